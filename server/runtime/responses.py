"""HTTP responses that follow a run: the SSE stream, and the waiting JSON answer of ``/wait`` and ``/join``.

Both keep the connection alive while the run executes (SSE heartbeat comments; blank lines ahead of the
JSON body, which JSON parsers skip) and carry ``Content-Location: /threads/{t}/runs/{r}`` plus a ``Location``
to reconnect to. When the client goes away the run goes on, unless its ``on_disconnect`` says ``cancel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Collection
from typing import Any

from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from server.runtime import queue, store
from server.runtime.manager import ActiveRun, RunManager
from server.runtime.serde import dumps
from server.runtime.streams import CONTROL_EVENTS, StreamEvent

log = logging.getLogger(__name__)
END_GRACE_SECONDS = 15.0
"""How long a listener waits for the recorded end of a run another process executed, once its status is final."""


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
    handle: ActiveRun | None = None,
) -> EventSourceResponse:
    """SSE of a run: replay from ``after`` (the Last-Event-ID) and follow it live until ``end``; from memory
    when this process executes it, else from ``run_events`` (``handle`` is the run just started here, whose
    ``metadata`` event goes out at once)."""
    run = manager.local(thread_id, run_id) or handle
    cancel = bool(cancel_on_disconnect) if cancel_on_disconnect is not None else (
        run is not None and run.on_disconnect == "cancel")  # fmt: skip
    first = [e for e in handle.stream.buffered() if e.seq > after] if handle is not None else []
    return EventSourceResponse(
        _events(manager, thread_id, run_id, after, modes, cancel, first),
        headers=run_headers(thread_id, run_id, "stream"),
        ping=manager.settings.sse_ping_seconds,
    )


def _sse(item: StreamEvent) -> ServerSentEvent:
    return ServerSentEvent(data=item.data, event=item.event, id=str(item.seq))


async def _events(
    manager: RunManager, thread_id: str, run_id: str, after: int, modes: Collection[str] | None, cancel: bool,
    first: list[StreamEvent],
) -> AsyncIterator[ServerSentEvent]:  # fmt: skip
    finished = False
    try:
        async for item in _follow(manager, thread_id, run_id, after, modes, first):
            if item.event != "end":  # the stream's close says it; LangGraph Server sends no end event
                yield _sse(item)
        finished = True
    finally:
        if not finished and cancel:
            manager.cancel_soon(thread_id, run_id, "the streaming client disconnected")


async def _follow(
    manager: RunManager, thread_id: str, run_id: str, after: int, modes: Collection[str] | None,
    first: list[StreamEvent],
) -> AsyncIterator[StreamEvent]:  # fmt: skip
    """The run's events after ``after``: from memory once this process executes it, from ``run_events``
    while another does; a run whose events were not recorded ends with its final values and ``end``."""
    cursor = after
    for item in first:
        cursor = item.seq
        yield item
    recorded = False  # whether this run's events are in run_events (then its end is too, just after its status)
    grace: float | None = None  # until when an ended run's recorded events are awaited
    quiet = False  # the last wait passed without news of a run queued here: nothing new can be recorded
    while True:
        woken = manager.bus.waiter(run_id)  # before reading, so a notification in between is not lost
        run = manager.local(thread_id, run_id)
        if run is not None:
            async for item in run.stream.listen(cursor, modes):
                yield item
            return
        if not quiet:
            rows, status = await queue.poll_events(manager.pool, thread_id, run_id, cursor)
            for row in rows:
                recorded = True
                cursor = row["seq"]
                item = StreamEvent(row["seq"], row["event"], row["data"])
                if modes is None or item.event in CONTROL_EVENTS or item.mode in modes:
                    yield item
                if item.event == "end":
                    return
            if rows:
                continue
            if status is None or status in store.ENDED:  # ended (or rolled back: its record is gone)
                # its writer records the last events and the end just after the status (batches are written in
                # the background, later on a busy machine): wait for them, bounded should that process be gone
                grace = grace if grace is not None else time.monotonic() + END_GRACE_SECONDS
                if recorded and time.monotonic() < grace:
                    await manager.bus.wait(woken, 1.0)
                    continue
                async for item in _final(manager, thread_id, run_id, cursor, modes):
                    yield item
                return
        # queued here and waiting for a worker: its claim here, or its first events elsewhere, wake us
        queued = manager.queued_here(run_id)
        await manager.bus.wait(woken, 5.0 if queued else 1.0)
        quiet = queued and not woken.is_set() and not quiet  # still, every other wait reads the records


async def _final(
    manager: RunManager, thread_id: str, run_id: str, cursor: int, modes: Collection[str] | None
) -> AsyncIterator[StreamEvent]:
    """A run whose events are not replayable (it executed elsewhere, or before a restart): its metadata if
    the listener has not seen it, then its final values (or error) and the end."""
    seq = max(cursor, 0)

    def event(name: str, data: Any) -> StreamEvent:
        nonlocal seq
        seq += 1
        return StreamEvent(seq, name, dumps(data))

    if cursor == 0:
        yield event("metadata", {"run_id": run_id, "thread_id": thread_id, "replayed": False})
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
            if not finished and cancel_on_disconnect:
                manager.cancel_soon(thread_id, run_id, "the waiting client disconnected")

    return StreamingResponse(body(), media_type="application/json", headers=run_headers(thread_id, run_id, "join"))
