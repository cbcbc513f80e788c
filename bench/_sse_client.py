"""A lean HTTP/1.1 SSE client for the load generator: one connection per stream, the event names as they arrive.

httpx costs the benchmark process about 12 ms of CPU per stream at 100 concurrent streams (``bench_runs.py
--profile-batch 100`` reads it from /proc), more than the server spends executing the run; on a 2-core
machine the load generator would then measure itself. This client parses only what the benchmark needs:
the status line, chunked framing and the ``event:`` lines.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 120.0


class StreamError(Exception):
    """The connection broke or the answer was not a chunked event stream."""


async def stream_events(base_url: str, path: str, body: dict[str, Any], on_event: Callable[[str, float], None]) -> int:
    """POST ``body`` as JSON and call ``on_event(name, seconds since the request)`` for each SSE event until the
    server ends the answer (at most ``TIMEOUT`` seconds); returns the HTTP status."""
    started = time.perf_counter()
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    payload = json.dumps(body).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request)
                status = int((await reader.readline()).split(b" ", 2)[1])
                chunked = False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                        chunked = True
                if status != 200 or not chunked:
                    return status
                rest = b""
                while size := int((await reader.readline()).split(b";", 1)[0] or b"0", 16):
                    data = rest + (await reader.readexactly(size + 2))[:-2]
                    lines = data.split(b"\n")
                    rest = lines.pop()
                    now = time.perf_counter() - started
                    for item in lines:
                        if item.startswith(b"event: "):
                            on_event(item[7:].strip().decode(), now)
                return status
            finally:
                writer.close()
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError) as exc:
        raise StreamError(f"{type(exc).__name__}: {exc}") from exc
