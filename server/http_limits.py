"""Connection-level limits of ``rimas serve``: a deadline for the request line and headers (slowloris).

uvicorn bounds only *idle* keep-alive connections (``timeout_keep_alive``); a client that sends its headers a
byte at a time, or half a request line and then nothing, holds a connection open for ever. The protocol
class built by :func:`header_timeout_protocol` gives every request a deadline: the request line and headers
must be complete within ``RIMAS_HEADER_TIMEOUT_SECONDS`` of the connection opening, or of the previous
response ending on a keep-alive connection. Past it the server answers 408 with the API's JSON error
envelope (code ``request_timeout``) and closes; a connection that sent nothing at all is closed silently,
as an idle keep-alive connection is (so keep-alive idles last at most the header timeout). The body has its
own deadline, in ``server.middleware.BodyLimit``.

The class extends uvicorn's h11 protocol, and ``rimas serve`` passes it explicitly (``http=``), so the
server runs on h11 whether or not httptools is installed (it is not a dependency of RIMAS). Request line
plus headers larger than :data:`MAX_HEADER_BYTES` are refused by h11 itself (uvicorn answers 400, closes).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
"""Largest request line + headers (uvicorn's ``h11_max_incomplete_event_size``; h11's default, kept explicit)."""


def _timeout_response(seconds: float, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The raw 408 written when the headers are late (raw bytes: h11's state may not allow a response yet)."""
    message = (
        f"the request line and headers did not arrive within {seconds:g} s (RIMAS_HEADER_TIMEOUT_SECONDS); "
        "send the whole request promptly"
    )
    body = json.dumps({"error": {"code": "request_timeout", "message": message}, "detail": message}).encode()
    headers = [*default_headers, (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), (b"connection", b"close")]  # fmt: skip
    head = b"HTTP/1.1 408 Request Timeout\r\n" + b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's line and headers (``header_timeout``)."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_after: RequestResponseCycle | None = None  # the cycle current when the deadline was set
        self._bytes_since_armed = False

    def _arm(self) -> None:
        self._disarm()
        self._waiting_after = self.cycle
        self._bytes_since_armed = False
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _disarm_if_request_started(self) -> None:
        """uvicorn makes a new cycle for each request whose headers h11 has parsed: the deadline was met."""
        if self._header_timer is not None and self.cycle is not self._waiting_after:
            self._disarm()

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._bytes_since_armed:
            log.debug("closing %s: request headers not complete after %g s", self.client, self.header_timeout)
            self.transport.write(_timeout_response(self.header_timeout, self.server_state.default_headers))
        self.transport.close()  # flushes the 408 first

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._bytes_since_armed = True
        super().data_received(data)
        self._disarm_if_request_started()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():  # keep-alive: the next request's headers are due from now
            self._arm()
        super().on_response_complete()  # may start a pipelined request at once
        self._disarm_if_request_started()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()  # the websocket protocol takes the transport over
        super().handle_websocket_upgrade(event)


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutProtocol]:
    """A :class:`HeaderTimeoutProtocol` with ``seconds`` as its deadline, for ``uvicorn.run(http=...)``."""
    if seconds <= 0:
        raise ValueError(f"the header timeout must be positive, not {seconds}")

    class ConfiguredHeaderTimeoutProtocol(HeaderTimeoutProtocol):
        header_timeout = seconds

    return ConfiguredHeaderTimeoutProtocol
