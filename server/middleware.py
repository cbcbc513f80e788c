"""ASGI middleware at the edge of the API: who may connect, what a request may hold, and browser access.

- :class:`LoopbackGuard` (auth off only): a request must come from a loopback peer and name a loopback host
  in its ``Host`` header. The first stops a server bound to a public address by mistake from serving the
  network without keys; the second stops DNS rebinding (a web page whose host name resolves to 127.0.0.1
  would otherwise reach the API from the user's browser). Refusals are 421 with the reason.
- :class:`BodyLimit`: request bodies above ``RIMAS_MAX_BODY_BYTES`` are refused with 413 (``Content-Length``
  checked up front, chunked bodies counted as they arrive; nothing beyond the limit is read).
- :class:`InputGuard`: 422 for a path, query or JSON body holding what PostgreSQL could not store (NUL,
  unpaired surrogates, non-finite numbers, nesting past ``RIMAS_MAX_JSON_DEPTH``), see :mod:`server.input_guard`.
- :class:`PlainTextJson`: LangGraph Studio posts JSON as ``text/plain`` (a "simple" CORS request, with no
  preflight); such a body is read as JSON.
- CORS (Starlette's) for the configured origins, plus loopback origins when auth is off, answering Chrome's
  private-network preflights, exposing ``Content-Location``/``Location`` (the SDK reads run ids from them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from server.errors import send_error
from server.input_guard import InputProblem, check_request_line, parse_json_body
from server.settings import Settings, is_loopback

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_ORIGINS = r"^https?://(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$"
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}  # DELETE /store/items takes a body


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _is_json(scope: Scope) -> bool:
    media = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then passes on what comes next (disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def host_name(host_header: str) -> str:
    """The host of a ``Host`` header value (``[::1]:8000`` -> ``::1``, ``localhost:80`` -> ``localhost``)."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


class LoopbackGuard:
    """With auth off, serve only loopback peers that address the server by a loopback name."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if client and client[0] and not is_loopback(client[0]):
            message = "auth is off (no RIMAS_API_KEYS), so only this machine may call the API; configure keys to serve "
            await send_error(send, 421, "loopback_only", message + "the network", close=True)
            return
        host = _header(scope, b"host")
        if host is None or not is_loopback(host_name(host)):
            message = (f"Host {host!r} is not a loopback name; with auth off the API answers only requests addressed "
                       "to localhost, 127.0.0.1 or [::1]")  # fmt: skip
            await send_error(send, 421, "loopback_only", message, close=True)
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes with 413, and bodies slower than ``timeout`` with 408.

    The whole body must arrive within ``timeout`` seconds (``RIMAS_BODY_TIMEOUT_SECONDS``) of the app being
    called, i.e. of the headers being in; a slower client gets 408 (code ``request_timeout``) and the
    connection is closed. The headers' own deadline is in :mod:`server.http_limits`.
    """

    def __init__(self, app: App, limit: int, timeout: float = 30.0) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    def _message(self) -> str:
        return f"request body is larger than {self.limit:,} bytes (RIMAS_MAX_BODY_BYTES)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await send_error(send, 413, "payload_too_large", self._message(), close=True)
            return
        chunks: list[bytes] = []  # bodies are small by definition here: read it whole, then hand it on
        received = 0
        try:
            async with asyncio.timeout(self.timeout):
                while received <= self.limit:
                    message = await receive()
                    if message["type"] != "http.request":  # the client went away
                        return
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            late = (f"the request body did not arrive within {self.timeout:g} s ({received:,} bytes came; "
                    "RIMAS_BODY_TIMEOUT_SECONDS); send the whole body promptly")  # fmt: skip
            await send_error(send, 408, "request_timeout", late, close=True)
            return
        if received > self.limit:
            await send_error(send, 413, "payload_too_large", self._message(), close=True)
            return
        await self.app(scope, _replaying(b"".join(chunks), receive), send)


class InputGuard:
    """422 for request lines and JSON bodies holding values the service cannot store (:mod:`server.input_guard`)."""

    def __init__(self, app: App, max_depth: int) -> None:
        self.app = app
        self.max_depth = max_depth

    @staticmethod
    async def refuse(send: Send, problem: InputProblem) -> None:
        details = [{"field": problem.field, "message": problem.message, "type": problem.kind}]
        summary = problem.message if problem.kind == "json_invalid" else str(problem)
        await send_error(send, 422, "validation_error", summary, details)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_request_line(scope.get("path", ""), scope.get("query_string", b""))
        except InputProblem as problem:
            await self.refuse(send, problem)
            return
        if scope.get("method") not in _BODY_METHODS or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        if body.strip():
            try:
                parse_json_body(body, self.max_depth)
            except InputProblem as problem:
                await self.refuse(send, problem)
                return
        await self.app(scope, _replaying(body, receive), send)


class PlainTextJson:
    """Treat a ``text/plain`` request body as JSON (LangGraph Studio sends JSON that way)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in _BODY_METHODS:
            content_type = _header(scope, b"content-type") or ""
            if content_type.split(";", 1)[0].strip().lower() == "text/plain":
                scope = dict(scope)
                scope["headers"] = [(k, b"application/json" if k == b"content-type" else v)
                                    for k, v in scope["headers"]]  # fmt: skip
        await self.app(scope, receive, send)


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Add the edge middleware; the last added runs first (CORS, then the loopback guard, then the rest)."""
    app.add_middleware(InputGuard, max_depth=settings.max_json_depth)
    app.add_middleware(PlainTextJson)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, timeout=settings.body_timeout_seconds)
    if not settings.auth_enabled:
        app.add_middleware(LoopbackGuard)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allowed_origins,
        allow_origin_regex=None if settings.auth_enabled else LOOPBACK_ORIGINS,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["authorization", "x-api-key", "content-type", "last-event-id", "x-request-id"],
        expose_headers=["content-location", "location", "x-request-id", "x-pagination-next", "x-pagination-total"],
        allow_private_network=True,
        max_age=600,
    )
