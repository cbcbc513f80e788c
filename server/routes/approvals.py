"""The approvals inbox: pending interrupts across threads, and the decision that resumes one.

Listing needs the viewer role; deciding needs the approver role, the action's required role and, for
approvals of money, the role's amount authority from the policy. The decision resumes the thread's graph
with ``{"decisions": [...]}`` stamped with the approver, so the graph state records who decided.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from server.auth import Approver, Viewer
from server.errors import ApiError
from server.openapi import errors
from server.runtime import store
from server.runtime.deps import RuntimeDep
from server.runtime.inbox import InboxFilter, list_pending
from server.runtime.interrupts import looks_like_approval
from server.runtime.manager import RunKind
from server.runtime.responses import run_headers
from server.runtime.schemas import (
    ID_PATTERN,
    CommandIn,
    DecisionRequest,
    LimitQuery,
    OffsetQuery,
    RunCreate,
    ThreadIdPath,
)
from server.settings import Role

router = APIRouter(tags=["approvals"])


@router.get("/approvals", summary="Pending interrupts across threads")
async def list_approvals(
    runtime: RuntimeDep,
    principal: Viewer,
    assistant_id: Annotated[str | None, Query(pattern=ID_PATTERN, description="Only this assistant's.")] = None,
    thread_id: Annotated[str | None, Query(pattern=ID_PATTERN, description="Only this thread's.")] = None,
    kind: Literal["approval", "question"] | None = None,
    required_role: Role | None = None,
    min_amount: Annotated[float | None, Query(ge=0, allow_inf_nan=False, description="Only amounts from this.")] = None,
    decidable: bool = Query(False, description="Only what the caller's role and authority can approve."),
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> dict[str, Any]:
    """Each item: assistant, thread, what is asked (actions, arguments, amounts, policy reasons), the role
    required, since when it waits, and whether the caller can decide it."""
    where = InboxFilter(assistant_id, thread_id, kind, required_role, min_amount, decidable)
    items = await list_pending(runtime.pool, principal, runtime.authority, where)
    return {"total": len(items), "items": items[offset : offset + limit]}


@router.post(
    "/approvals/{thread_id}/decision", summary="Decide a pending approval and resume the thread",
    responses=errors(409),
)  # fmt: skip
async def decide(
    thread_id: ThreadIdPath, body: DecisionRequest, runtime: RuntimeDep, principal: Approver
) -> JSONResponse:
    """``decisions``: one per action request, in order: ``{"type": "approve"}``, ``{"type": "edit",
    "edited_action": {"name", "args"}}``, ``{"type": "reject", "message"}`` (or the older ``args``/``comment``).
    422 names what is wrong with them; 403 when the caller's role or authority does not suffice; 409 when
    the thread no longer waits on that approval."""
    row = await store.fetch_thread(runtime.pool, thread_id)
    pending = (row.get("interrupts") or []) if row["status"] == "interrupted" else []
    approvals = [p for p in pending if looks_like_approval(p.get("value"))]
    if body.interrupt_id is not None:
        target = next((p for p in pending if p["id"] == body.interrupt_id), None)
        if target is None:
            raise ApiError(409, "not_pending", f"interrupt {body.interrupt_id} of thread {thread_id} is not pending")
        if target not in approvals:
            raise ApiError(409, "not_an_approval", f"interrupt {body.interrupt_id} is not an approval; answer it "
                           f"with POST /threads/{thread_id}/runs and command.resume")  # fmt: skip
    elif len(approvals) == 1:
        target = approvals[0]
    elif not approvals:
        raise ApiError(
            409, "not_pending", f"thread {thread_id} is not waiting for an approval (status {row['status']})"
        )
    else:
        ids = ", ".join(p["id"] for p in approvals)
        raise ApiError(422, "validation_error", f"interrupt_id: thread {thread_id} waits on several approvals "
                       f"({ids}); name the one decided")  # fmt: skip
    run_body = RunCreate(
        assistant_id=row["assistant_id"], command=CommandIn(resume={"decisions": body.decisions}),
        metadata={"decision_by": principal.id}, multitask_strategy="reject",
    )  # fmt: skip
    kind: RunKind = "wait" if body.wait else "background"
    run = await runtime.manager.start(thread_id, run_body, principal, kind, interrupt_id=target["id"])
    headers = run_headers(thread_id, run.run_id, "join")
    if not body.wait:
        return JSONResponse({"thread_id": thread_id, "run_id": run.run_id, "status": "running"}, 202, headers)
    result = await runtime.manager.result(thread_id, run.run_id)
    ended = await store.get_run(runtime.pool, thread_id, run.run_id)
    after = await store.fetch_thread(runtime.pool, thread_id)
    body_out = {
        "thread_id": thread_id,
        "run_id": run.run_id,
        "interrupt_id": target["id"],
        "run_status": ended["status"],
        "thread_status": after["status"],
        "error": ended.get("error"),
        "values": {k: v for k, v in result.items() if k not in ("__interrupt__", "__error__")},
        "pending": after.get("interrupts") or [],
    }
    return JSONResponse(body_out, 200, headers)
