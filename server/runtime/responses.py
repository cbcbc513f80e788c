"""HTTP responses that follow a run: the SSE stream, and the waiting JSON answer of ``/wait`` and ``/join``.

Both keep the connection alive while the run executes (SSE heartbeat comments; blank lines ahead of the
JSON body, which JSON parsers skip) and carry ``Content-Location: /threads/{t}/runs/{r}`` plus a ``Location``
to reconnect to. When the client goes away the run goes on, unless its ``on_disconnect`` says ``cancel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection
from typing import Any

from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from server.runtime.manager import ActiveRun, RunManager
from server.runtime.serde import dumps

log = logging.getLogger(__name__)


def run_headers(thread_id: str, run_id: str, location_suffix: str) -> dict[str, str]:
    base = f"/threads/{thread_id}/runs/{run_id}"
    return {"Content-Location": base, "Location": f"{base}/{location_suffix}"}


def stream_response(
    manager: RunManager,
    thread_id: str,
    run_id: str,
    *,
    after: int = 0,
    modes: Collection[str] | None = None,
    cancel_on_disconnect: bool | None = None,
) -> EventSourceResponse:
    """SSE of a run: replay from ``after`` (the Last-Event-ID) and follow it live until ``end``."""
    run = manager.local(thread_id, run_id)
    if run is not None:
        cancel = run.on_disconnect == "cancel" if cancel_on_disconnect is None else cancel_on_disconnect
        content: AsyncIterator[ServerSentEvent] = _local_events(manager, run, after, modes, cancel)
    else:
        content = _remote_events(manager, thread_id, run_id, after, modes)
    return EventSourceResponse(
        content,
        headers=run_headers(thread_id, run_id, "stream"),
        ping=manager.settings.sse_ping_seconds,
    )


async def _local_events(
    manager: RunManager, run: ActiveRun, after: int, modes: Collection[str] | None, cancel: bool
) -> AsyncIterator[ServerSentEvent]:
    finished = False
    try:
        async for item in run.stream.listen(after, modes):
            yield ServerSentEvent(data=item.data, event=item.event, id=str(item.seq))
        finished = True
    finally:
        if not finished and cancel:
            manager.request_cancel(run, "the streaming client disconnected")


async def _remote_events(
    manager: RunManager, thread_id: str, run_id: str, after: int, modes: Collection[str] | None
) -> AsyncIterator[ServerSentEvent]:
    """A run this process does not hold (another process runs it, or it ended before a restart): its
    events are not replayable; send its metadata, then, once it has ended, the final values and the end."""
    seq = max(after, 0)

    def event(name: str, data: Any) -> ServerSentEvent:
        nonlocal seq
        seq += 1
        return ServerSentEvent(data=dumps(data), event=name, id=str(seq))

    yield event("metadata", {"run_id": run_id, "thread_id": thread_id, "attempt": 1, "replayed": False})
    try:
        result = await manager.result(thread_id, run_id)
    except Exception as exc:
        log.exception("could not read a run's result", extra={"run_id": run_id})
        result = {"__error__": {"error": type(exc).__name__, "message": "could not read the run's result"}}
    if "__error__" in result:
        yield event("error", result["__error__"])
    elif modes is None or "values" in modes:
        yield event("values", result)
    yield event("end", None)


def waiting_json(
    manager: RunManager, run: ActiveRun | None, thread_id: str, run_id: str, *, cancel_on_disconnect: bool
) -> StreamingResponse:
    """200 JSON with the run's result, blank lines sent every ping interval until it is ready."""

    async def body() -> AsyncIterator[bytes]:
        finished = False
        result_task = asyncio.ensure_future(manager.result(thread_id, run_id))
        try:
            while True:
                done, _ = await asyncio.wait({result_task}, timeout=manager.settings.sse_ping_seconds)
                if done:
                    break
                yield b"\n"
            finished = True
            try:
                result = result_task.result()
            except Exception as exc:  # the 200 is already sent: report in the body, as LangGraph does
                log.exception("could not read a run's result", extra={"run_id": run_id})
                result = {"__error__": {"error": type(exc).__name__, "message": "could not read the run's result"}}
            yield dumps(result).encode()
        finally:
            if not result_task.done():
                result_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await result_task
            if not finished and cancel_on_disconnect and run is not None:
                manager.request_cancel(run, "the waiting client disconnected")

    return StreamingResponse(body(), media_type="application/json", headers=run_headers(thread_id, run_id, "join"))
