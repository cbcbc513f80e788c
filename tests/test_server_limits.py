"""Slow clients (slowloris) against a real uvicorn: header and body deadlines, 408 + close, normal use intact.

One uvicorn server runs in a thread for the module, with the protocol class of ``server/http_limits.py`` and
the ``BodyLimit`` middleware around a tiny FastAPI app, both with short deadlines; clients are raw sockets.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from pydantic import ValidationError

from server.http_limits import MAX_HEADER_BYTES, HeaderTimeoutProtocol, header_timeout_protocol
from server.middleware import BodyLimit, install_middleware

HEADER_TIMEOUT = 0.6
BODY_TIMEOUT = 0.6
MARGIN = 1.0  # scheduling slack on a busy machine: a deadline must fire within timeout + MARGIN


def _app() -> Any:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return BodyLimit(app, limit=1 << 20, timeout=BODY_TIMEOUT)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    """Port of a uvicorn server configured like ``rimas serve`` (h11 + header deadline + body deadline)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # bound here and handed over: no free-port race
    config = uvicorn.Config(
        _app(),
        http=header_timeout_protocol(HEADER_TIMEOUT),
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        lifespan="off",
        log_config=None,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield int(listener.getsockname()[1])
    server.should_exit = True
    thread.join(10)
    listener.close()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _read_until_closed(sock: socket.socket, wait: float = HEADER_TIMEOUT + MARGIN + 2) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took (a reset counts as closed)."""
    started, data = time.monotonic(), b""
    sock.settimeout(wait)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response off a keep-alive connection (Content-Length bodies only)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a full response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(status_line.split()[1]), headers, body


def _assert_408(data: bytes, setting: str) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data
    assert b"connection: close" in head.lower()
    payload = json.loads(body)
    assert payload["error"]["code"] == "request_timeout"
    assert setting in payload["error"]["message"]
    assert payload["detail"] == payload["error"]["message"]


def test_half_a_request_line_gets_408_and_is_closed(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET /ok HT")
        data, elapsed = _read_until_closed(sock)
    _assert_408(data, "RIMAS_HEADER_TIMEOUT_SECONDS")
    assert HEADER_TIMEOUT * 0.9 <= elapsed < HEADER_TIMEOUT + MARGIN


def test_a_connection_that_sends_nothing_is_closed_silently(port: int) -> None:
    with _connect(port) as sock:
        data, elapsed = _read_until_closed(sock)
    assert data == b""
    assert elapsed < HEADER_TIMEOUT + MARGIN


def test_headers_dribbled_for_ever_hit_the_deadline_not_an_idle_timer(port: int) -> None:
    """A byte every 50 ms never leaves the connection idle; the deadline counts from the start."""
    started = time.monotonic()
    with _connect(port) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        while time.monotonic() - started < HEADER_TIMEOUT + MARGIN + 2:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                break
            sock.sendall(b"a")
        data, _ = _read_until_closed(sock)
    assert time.monotonic() - started < HEADER_TIMEOUT + MARGIN
    _assert_408(data, "RIMAS_HEADER_TIMEOUT_SECONDS")


def test_a_body_that_stops_coming_gets_408_and_is_closed(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n" + b"x" * 10)  # fmt: skip
        data, elapsed = _read_until_closed(sock, BODY_TIMEOUT + MARGIN + 2)
    _assert_408(data, "RIMAS_BODY_TIMEOUT_SECONDS")
    assert b"10 bytes came" in data
    assert BODY_TIMEOUT * 0.9 <= elapsed < BODY_TIMEOUT + MARGIN


def test_keep_alive_requests_are_served_and_each_next_request_has_its_own_deadline(port: int) -> None:
    with _connect(port) as sock:
        for _ in range(2):
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, headers, body = _read_response(sock)
            assert (status, json.loads(body)) == (200, {"ok": True})
            assert headers.get("connection") != "close"
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
        status, _, body = _read_response(sock)
        assert (status, json.loads(body)) == (200, {"bytes": 5})
        time.sleep(HEADER_TIMEOUT * 0.6)  # idle, then a slow request: the deadline runs from the last response
        sock.sendall(b"GET /o")
        data, elapsed = _read_until_closed(sock)
    _assert_408(data, "RIMAS_HEADER_TIMEOUT_SECONDS")
    assert elapsed < HEADER_TIMEOUT * 0.4 + MARGIN


def test_a_slow_client_within_the_limits_is_served(port: int) -> None:
    request = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 40\r\nX-Pad: " + b"p" * 40 + b"\r\n\r\n"
    with _connect(port) as sock:
        for start in range(0, len(request), len(request) // 5 + 1):  # headers over ~0.2 s of 0.6 s
            sock.sendall(request[start : start + len(request) // 5 + 1])
            time.sleep(0.04)
        for _ in range(4):  # body over ~0.2 s of 0.6 s
            sock.sendall(b"b" * 10)
            time.sleep(0.05)
        status, _, body = _read_response(sock)
        assert (status, json.loads(body)) == (200, {"bytes": 40})
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: localhost\r\n\r\n")  # and the connection is still usable
        assert _read_response(sock)[0] == 200


def test_header_size_limit_is_explicit(port: int) -> None:
    with _connect(port) as sock:  # 8 KiB of headers is fine
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
        assert _read_response(sock)[0] == 200
    with _connect(port) as sock:  # over MAX_HEADER_BYTES: h11 refuses, uvicorn answers 400 and closes
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 1024))
        data, elapsed = _read_until_closed(sock)
    assert data == b"" or data.startswith(b"HTTP/1.1 400"), data
    assert elapsed < HEADER_TIMEOUT  # refused at once, not by the deadline


def test_protocol_factory_sets_the_deadline() -> None:
    protocol = header_timeout_protocol(2.5)
    assert issubclass(protocol, HeaderTimeoutProtocol)
    assert protocol.header_timeout == 2.5
    with pytest.raises(ValueError, match="positive"):
        header_timeout_protocol(0)


def test_settings_defaults_and_bounds(settings_factory: Any) -> None:
    settings = settings_factory()
    assert (settings.header_timeout_seconds, settings.body_timeout_seconds, settings.keep_alive_seconds) == (10, 30, 5)
    for field in ("header_timeout_seconds", "body_timeout_seconds", "keep_alive_seconds"):
        with pytest.raises(ValidationError, match=field):
            settings_factory(**{field: 0})


def test_settings_reach_the_middleware_and_uvicorn(settings_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import server.app
    import server.qdrant
    from server.cli import cmd_serve

    monkeypatch.setenv("RIMAS_HEADER_TIMEOUT_SECONDS", "3.5")
    monkeypatch.setenv("RIMAS_BODY_TIMEOUT_SECONDS", "7")
    monkeypatch.setenv("RIMAS_KEEP_ALIVE_SECONDS", "9")
    settings = settings_factory()
    app = FastAPI()
    install_middleware(app, settings)
    [body_limit] = [m for m in app.user_middleware if m.cls is BodyLimit]
    assert body_limit.kwargs["timeout"] == 7.0

    seen: dict[str, Any] = {}
    monkeypatch.setattr(server.qdrant, "check_qdrant_free", lambda _settings: None)
    monkeypatch.setattr(server.app, "create_app", lambda _settings: "app")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs, app=app))
    assert cmd_serve(argparse.Namespace(host=None, port=None)) == 0
    assert issubclass(seen["http"], HeaderTimeoutProtocol) and seen["http"].header_timeout == 3.5
    assert seen["timeout_keep_alive"] == 9
    assert seen["h11_max_incomplete_event_size"] == MAX_HEADER_BYTES
