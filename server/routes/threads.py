"""Threads: create, read, search, delete; their state, history (time travel) and audit trail."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict

from server.auth import Admin, Approver, Operator, Viewer
from server.errors import ApiError
from server.openapi import errors
from server.runtime import store
from server.runtime.admission import check_size
from server.runtime.audit import audit_events, render_text
from server.runtime.deps import RuntimeDep
from server.runtime.schemas import (
    UUID_PATTERN,
    CheckpointIdPath,
    CheckpointRef,
    HistoryRequest,
    JsonBool,
    LimitQuery,
    StateUpdate,
    ThreadCreate,
    ThreadIdPath,
    ThreadPatch,
    ThreadSearch,
)
from server.runtime.state import thread_json

router = APIRouter(tags=["threads"])


class StateAtCheckpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")

    checkpoint: CheckpointRef
    subgraphs: JsonBool = False


@router.post("/threads", summary="Create a thread", responses=errors(404, 409))
async def create_thread(body: ThreadCreate, runtime: RuntimeDep, principal: Operator) -> dict[str, Any]:
    """A new thread (``thread_id`` optional; an existing id is a 409 unless ``if_exists='do_nothing'``).
    ``supersteps`` (admin) writes its first checkpoints, as the graph ``metadata.graph_id`` names."""
    check_size("metadata", body.metadata, runtime.settings.max_metadata_bytes, "RIMAS_MAX_METADATA_BYTES")
    thread_id = body.thread_id or str(uuid.uuid4())
    graph = None
    if body.supersteps:
        if not principal.has("admin"):
            raise ApiError(403, "forbidden", f"supersteps write a thread's state: that needs the admin role; your "
                           f"key has {principal.role}")  # fmt: skip
        graph_id = body.metadata.get("graph_id")
        if not isinstance(graph_id, str):
            raise ApiError(422, "validation_error", "metadata.graph_id: name the graph whose nodes the supersteps "
                           "write as (needed with supersteps)")  # fmt: skip
        graph = await runtime.assistants.graph_of(graph_id)
    row = await store.create_thread(runtime.pool, thread_id, body.metadata, principal.id, body.if_exists)
    if graph is not None and body.supersteps:
        try:
            await runtime.write_supersteps(thread_id, graph, body.supersteps, principal)
        except BaseException:
            await runtime.delete_thread(thread_id)  # all of it or nothing
            raise
        row = await store.fetch_thread(runtime.pool, thread_id)
    return thread_json(row, await runtime.values(row))


@router.post("/threads/search", summary="Search threads")
async def search_threads(
    body: ThreadSearch, runtime: RuntimeDep, _: Viewer, response: Response
) -> list[dict[str, Any]]:
    """Threads by metadata (containment) and status, sorted and paged; each with its current values."""
    rows = await store.search_threads(
        runtime.pool, metadata=body.metadata, status=body.status, ids=body.ids, limit=body.limit,
        offset=body.offset, sort_by=body.sort_by, sort_order=body.sort_order,
    )  # fmt: skip
    if len(rows) == body.limit:
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    if body.select is not None and "values" not in body.select:
        return [thread_json(row) for row in rows]
    values = await asyncio.gather(*(runtime.values(row) for row in rows))
    return [thread_json(row, v) for row, v in zip(rows, values, strict=True)]


@router.post("/threads/count", summary="Count threads")
async def count_threads(body: ThreadSearch, runtime: RuntimeDep, _: Viewer) -> int:
    return await store.count_threads(runtime.pool, metadata=body.metadata, status=body.status)


@router.get("/threads/{thread_id}", summary="Get a thread")
async def get_thread(thread_id: ThreadIdPath, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    row = await store.fetch_thread(runtime.pool, thread_id)
    return thread_json(row, await runtime.values(row))


@router.patch("/threads/{thread_id}", summary="Merge metadata into a thread")
async def patch_thread(thread_id: ThreadIdPath, body: ThreadPatch, runtime: RuntimeDep, _: Operator) -> dict[str, Any]:
    check_size("metadata", body.metadata, runtime.settings.max_metadata_bytes, "RIMAS_MAX_METADATA_BYTES")
    row = await store.patch_thread(runtime.pool, thread_id, body.metadata)
    return thread_json(row, await runtime.values(row))


@router.delete(
    "/threads/{thread_id}", status_code=204, summary="Delete a thread and its checkpoints (admin)",
    responses=errors(409),
)  # fmt: skip
async def delete_thread(thread_id: ThreadIdPath, runtime: RuntimeDep, _: Admin) -> Response:
    """Its checkpoints are its audit trail, so only an admin may delete it."""
    await runtime.delete_thread(thread_id)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/state", summary="The thread's current state")
async def get_state(thread_id: ThreadIdPath, runtime: RuntimeDep, _: Viewer, subgraphs: bool = False) -> dict[str, Any]:
    return await runtime.state(thread_id)


@router.post(
    "/threads/{thread_id}/state", summary="Write the thread's state (admin), or end a pending interrupt",
    responses=errors(409),
)  # fmt: skip
async def update_state(
    thread_id: ThreadIdPath, body: StateUpdate, runtime: RuntimeDep, principal: Approver
) -> dict[str, Any]:
    """``values`` written as if ``as_node`` returned them (admin; refused with 409 while the thread waits at an
    interrupt, and at or before a checkpoint whose approval was decided). ``{"values": null, "as_node":
    "__end__"}`` ends a pending interrupt without a decision (Agent Inbox's "ignore"; approver for approvals),
    recorded in the audit. Answers ``{"checkpoint": {...}}``."""
    return await runtime.update_state(thread_id, body, principal)


@router.post("/threads/{thread_id}/copy", summary="Copy a thread with its whole history", responses=errors(409))
async def copy_thread(thread_id: ThreadIdPath, runtime: RuntimeDep, principal: Operator) -> dict[str, Any]:
    row = await runtime.copy_thread(thread_id, principal)
    return thread_json(row, await runtime.values(row))


@router.get("/threads/{thread_id}/state/{checkpoint_id:uuid}", summary="The thread's state at a checkpoint")
async def get_state_at(
    thread_id: ThreadIdPath, checkpoint_id: CheckpointIdPath, runtime: RuntimeDep, _: Viewer, subgraphs: bool = False
) -> dict[str, Any]:
    return await runtime.state(thread_id, str(checkpoint_id))


@router.post(
    "/threads/{thread_id}/state/checkpoint", summary="The thread's state at a checkpoint", responses=errors(409)
)
async def post_state_at(
    thread_id: ThreadIdPath, body: StateAtCheckpoint, runtime: RuntimeDep, _: Viewer
) -> dict[str, Any]:
    return await runtime.state(thread_id, body.checkpoint.checkpoint_id, in_body=True,
                               ns=body.checkpoint.checkpoint_ns)  # fmt: skip


@router.get("/threads/{thread_id}/history", summary="The thread's checkpoints, newest first")
async def get_history(
    thread_id: ThreadIdPath,
    runtime: RuntimeDep,
    _: Viewer,
    limit: LimitQuery = 10,
    before: Annotated[
        str | None, Query(pattern=UUID_PATTERN, description="Only checkpoints older than this checkpoint id.")
    ] = None,
) -> list[dict[str, Any]]:
    return await runtime.history(thread_id, HistoryRequest(limit=limit, before=before))


@router.post("/threads/{thread_id}/history", summary="The thread's checkpoints, newest first")
async def post_history(
    thread_id: ThreadIdPath, body: HistoryRequest, runtime: RuntimeDep, _: Viewer
) -> list[dict[str, Any]]:
    """Each checkpoint with its values, next nodes, tasks (what ran, what it wrote), interrupts, metadata
    (step, run, actor) and a ``summary``; ``before`` pages back, ``metadata`` filters."""
    return await runtime.history(thread_id, body)


@router.get(
    "/threads/{thread_id}/audit", summary="The thread's audit trail", response_model=None,
    responses={200: {"description": "The events as JSON, or (format=text) as readable lines.",
                     "content": {"application/json": {}, "text/plain": {"schema": {"type": "string"}}}}},
)  # fmt: skip
async def get_audit(
    thread_id: ThreadIdPath, runtime: RuntimeDep, _: Viewer, format: Literal["json", "text"] = "json"
) -> dict[str, Any] | PlainTextResponse:
    """Who did what when: runs started, node writes, approvals asked, decisions with approver and comment."""
    events = await audit_events(runtime, thread_id)
    if format == "text":
        return PlainTextResponse(render_text(thread_id, events))
    return {"thread_id": thread_id, "events": events}
