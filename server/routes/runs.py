"""Runs on a thread: stream (SSE), wait, background; list, get, join, re-attach to the stream, cancel.
Stateless runs (``POST /runs[/stream|/wait]``) run on a temporary thread, deleted after the run.

The payload is LangGraph's (``assistant_id``, ``input`` or ``command``, ``stream_mode``, ``context``,
``metadata``, ``checkpoint_id``, ``multitask_strategy``, ``if_not_exists``, ``on_disconnect``, ``webhook``,
``after_seconds``). A thread runs one run at a time; the strategy says what a second one does (queue behind,
409, interrupt or roll back the first).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError
from sse_starlette import EventSourceResponse

from server.auth import Admin, Operator, Viewer
from server.errors import ApiError
from server.openapi import errors
from server.runtime import store
from server.runtime.deps import RuntimeDep
from server.runtime.events import StreamMode
from server.runtime.manager import ActiveRun, RunKind
from server.runtime.responses import run_headers, stream_response, waiting_json
from server.runtime.schemas import LimitQuery, OffsetQuery, RunCreate, RunIdPath, ThreadIdPath
from server.runtime.state import run_json

router = APIRouter(tags=["runs"])

SSE_ANSWER = {
    "description": "Server-sent events: metadata, one event per stream mode, error on failure; the stream closes "
    "when the run ends",
    "content": {"text/event-stream": {"schema": {"description": "Each event's data is a JSON value."}}},
}


@router.post(
    "/threads/{thread_id}/runs/stream", summary="Start a run and stream its events (SSE)",
    response_class=EventSourceResponse, responses={200: SSE_ANSWER, **errors(409)},
)  # fmt: skip
async def stream_run(
    thread_id: ThreadIdPath, body: RunCreate, runtime: RuntimeDep, principal: Operator
) -> EventSourceResponse:
    """``metadata`` first, then one event per requested mode and ``error`` on failure, each with an ``id`` to
    resume from (``GET .../runs/{run_id}/stream`` with ``Last-Event-ID``); the stream closes when the run ends
    (no ``end`` event, as in LangGraph Server)."""
    run = await runtime.manager.start(thread_id, body, principal, "stream")
    return stream_response(runtime.manager, thread_id, run.run_id, handle=run)


@router.post("/threads/{thread_id}/runs/wait", summary="Start a run and wait for its result", responses=errors(409))
async def wait_run(
    thread_id: ThreadIdPath, body: RunCreate, runtime: RuntimeDep, principal: Operator
) -> StreamingResponse:
    """The thread's values when the run ends (``__interrupt__`` when it waits for a person, ``__error__``
    when it failed). The run goes on if the client disconnects, unless ``on_disconnect='cancel'``."""
    run = await runtime.manager.start(thread_id, body, principal, "wait")
    return waiting_json(runtime.manager, run, thread_id, run.run_id, cancel_on_disconnect=run.on_disconnect == "cancel")


@router.post("/threads/{thread_id}/runs", summary="Start a background run", responses=errors(409))
async def create_run(
    thread_id: ThreadIdPath, body: RunCreate, runtime: RuntimeDep, principal: Operator
) -> JSONResponse:
    run = await runtime.manager.start(thread_id, body, principal, "background")
    row = await store.get_run(runtime.pool, thread_id, run.run_id)
    return JSONResponse(run_json(row), headers=run_headers(thread_id, run.run_id, "stream"))


_NEW_THREAD = ("not taken: a stateless run starts on a new thread, which has no checkpoint to start from; leave it "
               "out (or run on a thread)")


def _no_checkpoint(value: Any) -> None:
    if value is not None:
        raise PydanticCustomError("none_required", _NEW_THREAD)


NoCheckpoint = Annotated[None, BeforeValidator(_no_checkpoint)]


class StatelessRunCreate(RunCreate):
    """The body of ``POST /runs[/stream|/wait]``: a run on a new temporary thread."""

    on_completion: Literal["delete", "keep"] = Field(
        "delete", description="delete: the thread goes after the run (default); keep: it stays, to read or go on."
    )
    checkpoint_id: NoCheckpoint = Field(None, description=_NEW_THREAD)
    checkpoint: NoCheckpoint = Field(None, description=_NEW_THREAD)


async def _stateless(body: StatelessRunCreate, runtime: RuntimeDep, principal: Operator, kind: RunKind) -> ActiveRun:
    body.if_not_exists = "create"
    return await runtime.manager.start(str(uuid.uuid4()), body, principal, kind, on_completion=body.on_completion)


@router.post(
    "/runs/stream", summary="Run on a temporary thread and stream its events (SSE)",
    response_class=EventSourceResponse, responses={200: SSE_ANSWER, **errors(404, 409)},
)  # fmt: skip
async def stream_stateless(body: StatelessRunCreate, runtime: RuntimeDep, principal: Operator) -> EventSourceResponse:
    """As ``POST /threads/{id}/runs/stream`` on a new thread, deleted after the run unless ``on_completion`` is
    ``keep`` (the ``metadata`` event and the ``Content-Location`` header name it)."""
    run = await _stateless(body, runtime, principal, "stream")
    return stream_response(runtime.manager, run.thread_id, run.run_id, handle=run)


@router.post("/runs/wait", summary="Run on a temporary thread and wait for its result", responses=errors(404, 409))
async def wait_stateless(body: StatelessRunCreate, runtime: RuntimeDep, principal: Operator) -> StreamingResponse:
    """The run's final values, as ``POST /threads/{id}/runs/wait``; the thread is deleted after the run unless
    ``on_completion`` is ``keep``."""
    run = await _stateless(body, runtime, principal, "wait")
    return waiting_json(runtime.manager, run, run.thread_id, run.run_id,
                        cancel_on_disconnect=run.on_disconnect == "cancel")  # fmt: skip


@router.post("/runs", summary="Start a background run on a temporary thread", responses=errors(404, 409))
async def create_stateless(body: StatelessRunCreate, runtime: RuntimeDep, principal: Operator) -> JSONResponse:
    """The run's record; its thread is deleted after the run unless ``on_completion`` is ``keep``."""
    run = await _stateless(body, runtime, principal, "background")
    row = await store.get_run(runtime.pool, run.thread_id, run.run_id)
    return JSONResponse(run_json(row), headers=run_headers(run.thread_id, run.run_id, "stream"))


@router.get("/threads/{thread_id}/runs", summary="List a thread's runs")
async def list_runs(
    thread_id: ThreadIdPath,
    runtime: RuntimeDep,
    _: Viewer,
    limit: LimitQuery = 10,
    offset: OffsetQuery = 0,
    status: Literal["pending", "running", "success", "error", "interrupted", "timeout"] | None = None,
) -> list[dict[str, Any]]:
    await store.fetch_thread(runtime.pool, thread_id)
    rows = await store.list_runs(runtime.pool, thread_id, limit=limit, offset=offset, status=status)
    return [run_json(row) for row in rows]


@router.get("/threads/{thread_id}/runs/{run_id:uuid}", summary="Get a run")
async def get_run(thread_id: ThreadIdPath, run_id: RunIdPath, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return run_json(await store.get_run(runtime.pool, thread_id, str(run_id)))


@router.delete(
    "/threads/{thread_id}/runs/{run_id:uuid}", status_code=204, summary="Delete an ended run's record (admin)",
    responses=errors(409),
)  # fmt: skip
async def delete_run(thread_id: ThreadIdPath, run_id: RunIdPath, runtime: RuntimeDep, _: Admin) -> Response:
    await store.delete_run(runtime.pool, thread_id, str(run_id))
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id:uuid}/join", summary="Wait for a run and get the thread's values")
async def join_run(thread_id: ThreadIdPath, run_id: RunIdPath, runtime: RuntimeDep, _: Viewer) -> StreamingResponse:
    await store.get_run(runtime.pool, thread_id, str(run_id))
    run = runtime.manager.local(thread_id, str(run_id))
    return waiting_json(runtime.manager, run, thread_id, str(run_id), cancel_on_disconnect=False)


@router.get(
    "/threads/{thread_id}/runs/{run_id:uuid}/stream", summary="Re-attach to a run's event stream",
    response_class=EventSourceResponse, responses={200: SSE_ANSWER},
)  # fmt: skip
async def join_stream(
    thread_id: ThreadIdPath,
    run_id: RunIdPath,
    runtime: RuntimeDep,
    principal: Viewer,
    stream_mode: Annotated[
        list[StreamMode | Literal[""]] | None,
        Query(description="Only these modes (default, or empty: all the run's)."),
    ] = None,
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[str | None, Header(description="Replay the events after this id.")] = None,
) -> EventSourceResponse:
    """Replays the buffered events after ``Last-Event-ID`` and follows the run to its end. A run this
    process does not hold (another process, or ended before a restart) gives its final values."""
    await store.get_run(runtime.pool, thread_id, str(run_id))
    modes: list[str] | None = [m for m in stream_mode or [] if m] or None
    if cancel_on_disconnect and not principal.has("operator"):
        raise ApiError(403, "forbidden", "cancel_on_disconnect needs the operator role")
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    return stream_response(runtime.manager, thread_id, str(run_id), after=after, modes=modes,
                           cancel_on_disconnect=cancel_on_disconnect)  # fmt: skip


@router.post(
    "/threads/{thread_id}/runs/{run_id:uuid}/cancel",
    summary="Cancel a run",
    status_code=202,
    response_class=Response,
    responses={
        202: {"description": "Cancellation requested (no body)."},
        204: {"description": "The run has stopped (wait=true; no body)."},
        **errors(409),
    },
)
async def cancel_run(
    thread_id: ThreadIdPath,
    run_id: RunIdPath,
    runtime: RuntimeDep,
    _: Operator,
    wait: bool = False,
    action: Annotated[
        Literal["interrupt", "rollback"],
        Query(description="interrupt: keep what it did (status interrupted); rollback: remove its checkpoints "
              "and its record."),
    ] = "interrupt",
) -> Response:
    """Stop a run wherever it executes (a queued one never starts). ``wait=1`` answers 204 once it has
    stopped."""
    await runtime.manager.cancel(thread_id, str(run_id), wait=wait, action=action)
    return Response(status_code=204 if wait else 202)
