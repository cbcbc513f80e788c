"""Start a ``planning`` thread from inside another workflow (the chat's "start a plan for store 3").

Graphs cannot reach the server's run queue (imports flow server -> graphs), so the server installs this function
as ``tools.deps.ToolDeps.plan_starter`` once its runtime is open. The asker needs the role ``POST /plans`` needs
(operator) and the request is checked exactly as that route checks it; the run is queued in the background in the
asker's name, and the plan then waits for an approver like any other.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from graphs.planning.request import CreatePlanRequest, check_request, plain
from server.auth import ROLE_RANK, Principal
from server.runtime.core import Runtime
from server.runtime.schemas import RunCreate

ASSISTANT = "planning"

PlanStarter = Callable[[dict[str, Any], dict[str, Any]], Awaitable[str]]


def plan_starter(runtime: Runtime) -> PlanStarter | None:
    """The starter for this runtime; None when it does not serve the planning workflow."""
    if ASSISTANT not in runtime.registry:
        return None

    async def start(request: dict[str, Any], principal: dict[str, Any]) -> str:
        role = principal.get("role")
        if role not in ROLE_RANK or ROLE_RANK[role] < ROLE_RANK["operator"]:
            raise PermissionError(f"starting a plan needs the operator role (POST /plans); this key is a {role}")
        checked = CreatePlanRequest.model_validate(request)
        problem = check_request(checked)
        if problem is not None:
            raise ValueError(problem)
        plan_id = str(uuid.uuid4())
        body = RunCreate(assistant_id=ASSISTANT, input=plain(checked), if_not_exists="create",
                         metadata={"plan_store_id": checked.store_id, "created_by": principal.get("id"),
                                   "started_from": "chat"})  # fmt: skip
        who = Principal(id=str(principal.get("id") or "unknown"), role=role)
        await runtime.manager.start(plan_id, body, who, "background")
        return plan_id

    return start
