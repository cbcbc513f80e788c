"""Start a ``planning`` thread from inside another workflow (the chat's "start a plan for store 3").

Graphs cannot reach the server's run queue (imports flow server -> graphs), so the server installs this function
as ``tools.deps.ToolDeps.plan_starter`` once its runtime is open. The asker needs the role ``POST /plans`` needs
(operator) and the request is checked exactly as that route checks it; the run is queued in the background in the
asker's name, and the plan then waits for an approver like any other. With an idempotency key (the chat passes its
thread and message), the plan's id is derived from it and a second start with that key starts nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from graphs.planning.request import CreatePlanRequest, check_request, plain
from server.auth import ROLE_RANK, Principal
from server.errors import ApiError
from server.runtime import store
from server.runtime.core import Runtime
from server.runtime.schemas import RunCreate

ASSISTANT = "planning"

PlanStarter = Callable[[dict[str, Any], dict[str, Any], str | None], Awaitable[str]]
PLANS = uuid.UUID("0b6f8f2e-3c1d-4f7a-9a1e-5d2c7b8e4f10")
"""Namespace of the plan ids derived from an idempotency key."""


def plan_starter(runtime: Runtime) -> PlanStarter | None:
    """The starter for this runtime; None when it does not serve the planning workflow."""
    if ASSISTANT not in runtime.registry:
        return None

    async def start(request: dict[str, Any], principal: dict[str, Any], key: str | None = None) -> str:
        role = principal.get("role")
        if role not in ROLE_RANK or ROLE_RANK[role] < ROLE_RANK["operator"]:
            raise PermissionError(f"starting a plan needs the operator role (POST /plans); this key is a {role}")
        checked = CreatePlanRequest.model_validate(request)
        problem = check_request(checked)
        if problem is not None:
            raise ValueError(problem)
        plan_id = str(uuid.uuid5(PLANS, key) if key else uuid.uuid4())
        if key:
            async with runtime.pool.connection() as conn:
                if await store.get_thread(conn, plan_id) is not None:  # this question already started it
                    return plan_id
        body = RunCreate(assistant_id=ASSISTANT, input=plain(checked), if_not_exists="create",
                         multitask_strategy="reject",
                         metadata={"plan_store_id": checked.store_id, "created_by": principal.get("id"),
                                   "started_from": "chat"})  # fmt: skip
        who = Principal(id=str(principal.get("id") or "unknown"), role=role)
        try:
            await runtime.manager.start(plan_id, body, who, "background")
        except ApiError as exc:  # the same key started it a moment ago: its run is in flight (multitask reject)
            if not (key and exc.status == 409):
                raise
        return plan_id

    return start
