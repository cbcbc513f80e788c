"""Store plans (the RIMAS seed's REST contract), each one a ``planning`` thread.

``POST /plans`` runs the planning graph until it waits for approval and answers the seed's ``PlanResponse``
(``plan_id`` = the thread id). ``GET /plans`` lists plans (status and store filters, paging), ``GET /plans/{id}``
gives one with its recommendations, totals and reflection, ``POST /plans/{id}/approve`` (optional line edits and a
comment) and ``POST /plans/{id}/reject`` (a reason) decide it by resuming its approval interrupt, and
``GET /plans/{id}/events`` derives the seed's event flow from the thread's checkpoint history. For the console's
form and charts, ``GET /plans/stores`` lists the stores with the items each stocks (and the policy's defaults), and
``GET /plans/{id}/series`` gives each line's recent sales, P50/P90 forecast and projected stock. Creating a plan
needs the operator role; deciding one needs approver (and the policy's authority for its amounts); reading, viewer.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from graphs.planning.request import MAX_COVER_DAYS, CreatePlanRequest, check_request, plain
from graphs.planning.review import PO, PROMO, edit_problem, plan_actions
from rag.schemas import JSON_INTEGER
from server.auth import Approver, Operator, Principal, Viewer
from server.deps import ResourcesDep
from server.errors import ApiError
from server.openapi import errors
from server.plans import plan_events, plan_series, read_plan, read_plans, thread_values
from server.runtime.core import Runtime
from server.runtime.schemas import CommandIn, LimitQuery, OffsetQuery, RunCreate
from tools.deps import current
from tools.planning import get_items, get_store, plan_start, store_catalog

router = APIRouter(tags=["plans"])

ASSISTANT = "planning"
PlanStatus = Literal["created", "pending_approval", "approved", "rejected", "no_action"]
PlanIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
                                 description="The plan id (a lowercase UUID: the planning thread's id).")]  # fmt: skip


class LineEdit(BaseModel):
    """A change to one line: its order quantity and/or its discount (0 drops the order or the promotion)."""

    model_config = ConfigDict(extra="forbid")

    item_id: Annotated[int, Field(ge=1, le=2**31 - 1), JSON_INTEGER]
    order_qty: Annotated[int, Field(ge=0, le=10**7), JSON_INTEGER] | None = Field(
        None, description="Units to order; 0 drops the order.")
    discount: Annotated[float | None, Field(ge=0, lt=1, allow_inf_nan=False, description="0 drops the promotion.")] \
        = None  # fmt: skip


class ApproveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    edits: Annotated[list[LineEdit], Field(max_length=400, description="Lines changed before approving.")] = []
    comment: Annotated[str | None, Field(max_length=2000, description="Why, for the audit trail.")] = None


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=2000, description="Why the plan is rejected.")]


def _runtime(res: Any) -> Runtime:
    runtime = res.runtime
    if runtime is None or ASSISTANT not in runtime.registry:
        raise ApiError(409, "workflow_not_served", f"this server does not serve the {ASSISTANT!r} workflow "
                       "(langgraph.json)")  # fmt: skip
    return runtime


async def _check_known(request: CreatePlanRequest) -> None:
    """404 for an unknown store; 422 naming the first item the store does not stock."""
    if await get_store(request.store_id) is None:
        raise ApiError(404, "not_found", f"store_id: store {request.store_id} does not exist")
    problem = check_request(request)
    if problem is not None:
        raise ApiError(422, "validation_error", problem, [{"field": problem.split(":")[0], "message": problem,
                                                           "type": "value_error"}])  # fmt: skip
    skus = [item.item_id for item in request.items]
    known = await get_items(request.store_id, skus, await plan_start(request.store_id))
    for index, sku in enumerate(skus):
        if sku not in known:
            raise ApiError(422, "validation_error", f"items[{index}].item_id: item {sku} is not stocked by store "
                           f"{request.store_id}", [{"field": f"items[{index}].item_id", "message": "unknown item",
                                                    "type": "unknown_item"}])  # fmt: skip


@router.post("/plans", status_code=201, responses=errors(404, 409), summary="Create a store plan")
async def create_plan(body: CreatePlanRequest, res: ResourcesDep, principal: Operator) -> JSONResponse:
    """Runs the planning workflow (forecast, orders, promotions, budget, reflection) until it waits for approval;
    answers the plan with status ``pending_approval`` (or ``no_action`` when there is nothing to order or promote).
    404 for an unknown store, 422 naming an item the store does not stock or a bound the request breaks."""
    runtime = _runtime(res)
    await _check_known(body)
    plan_id = str(uuid.uuid4())
    run_body = RunCreate(assistant_id=ASSISTANT, input=plain(body), if_not_exists="create",
                         metadata={"plan_store_id": body.store_id, "created_by": principal.id})  # fmt: skip
    run = await runtime.manager.start(plan_id, run_body, principal, "wait")
    result = await runtime.manager.result(plan_id, run.run_id)
    if result.get("__error__"):
        raise ApiError(500, "plan_failed", f"the planning workflow failed: {result['__error__'].get('message')}")
    plan = await read_plan(runtime, plan_id, trace_id=run.run_id)
    return JSONResponse(plan, 201, {"Location": f"/plans/{plan_id}", "Content-Location": f"/threads/{plan_id}"})


@router.get("/plans", summary="List plans")
async def list_plans(
    res: ResourcesDep,
    _: Viewer,
    status: PlanStatus | None = None,
    store_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> dict[str, Any]:
    """Newest first: ``{total, items: [{plan_id, store_id, horizon_days, status, total_cost, line_count,
    confidence, created_by, decided_by, decision_comment, created_at, updated_at}]}``."""
    return await read_plans(status, store_id, limit, offset)


@router.get("/plans/stores", summary="What a plan may be made of")
async def list_plan_stores(_: Viewer) -> dict[str, Any]:
    """``{stores: [{store_id, name, city, region, items: [{item_id, name, category, on_hand, on_order,
    lead_time_days}]}], defaults: {lead_time_days, budget_limit, max_discount}, max_cover_days}``: the stores and
    the items each stocks (a plan request may name only those), and the policy's defaults for a request."""
    policy = current().policy.planning
    return {"stores": await store_catalog(), "max_cover_days": MAX_COVER_DAYS,
            "defaults": {"lead_time_days": policy.default_lead_time_days, "budget_limit": policy.max_plan_budget_usd,
                         "max_discount": policy.max_discount_pct / 100}}  # fmt: skip


@router.get("/plans/{plan_id}", responses=errors(404, 409), summary="One plan")
async def get_plan(plan_id: PlanIdPath, res: ResourcesDep, _: Viewer) -> dict[str, Any]:
    """The seed's ``PlanResponse`` (plan_id, status, recommendations, metadata {model_version, generated_at,
    trace_id}) with the totals, the reflection, the decision and what was written."""
    return await read_plan(_runtime(res), plan_id)


def _decisions(values: dict[str, Any], body: ApproveRequest, principal: Principal) -> list[dict[str, Any]]:
    """One decision per action of the plan: approve, edit (quantity or discount) or reject (an edit to 0)."""
    lines = {line["item_id"]: line for line in values.get("lines") or []}
    actions = plan_actions(values)  # type: ignore[arg-type]
    by_key = {(a["name"], a["args"]["item_id"]): a for a in actions}
    changes: dict[tuple[str, int], Any] = {}
    for index, edit in enumerate(body.edits):
        if edit.item_id not in lines:
            raise ApiError(422, "validation_error", f"edits[{index}].item_id: item {edit.item_id} is not a line of "
                           f"this plan; lines: {', '.join(map(str, lines))}")  # fmt: skip
        for field, name, value in (("order_qty", PO, edit.order_qty), ("discount", PROMO, edit.discount)):
            if value is None:
                continue
            if (name, edit.item_id) not in by_key:
                if value == 0:
                    continue
                what = "orders nothing" if name == PO else "has no promotion"
                raise ApiError(422, "validation_error", f"edits[{index}].{field}: the plan {what} for item "
                               f"{edit.item_id}; only proposed orders and promotions can be edited")  # fmt: skip
            if value != 0:
                problem = edit_problem(values, name, lines[edit.item_id], value, principal.role)  # type: ignore[arg-type]
                if problem is not None:
                    raise ApiError(422, "validation_error", f"edits[{index}].{field}: {problem}")
            changes[(name, edit.item_id)] = value
    total = 0.0
    for action in actions:
        if action["name"] == PO:
            quantity = changes.get((PO, action["args"]["item_id"]), action["args"]["quantity"])
            total += quantity * float(action["args"]["unit_cost"])
    if total > float(values["budget"]) + 0.005:
        raise ApiError(422, "validation_error", f"edits: the edited orders cost {total:,.2f}, over the plan's budget "
                       f"of {float(values['budget']):,.2f}")  # fmt: skip
    decisions = []
    for action in actions:
        key = (action["name"], action["args"]["item_id"])
        extra: dict[str, Any] = {"message": body.comment} if body.comment else {}
        if key not in changes or changes[key] == action["args"]["quantity" if action["name"] == PO else "discount"]:
            decisions.append({"type": "approve", **extra})
        elif changes[key] == 0:
            decisions.append({"type": "reject", "message": body.comment or "dropped in the approver's edit"})
        else:
            value = changes[key]
            amount = round(value * float(action["args"]["unit_cost"]), 2) if action["name"] == PO else \
                round(100 * value, 1)  # fmt: skip
            field = "quantity" if action["name"] == PO else "discount"
            decisions.append({"type": "edit", "edited_action": {"name": action["name"], "args": {
                **action["args"], field: value, "amount": amount}}, **extra})  # fmt: skip
    return decisions


async def _pending(runtime: Runtime, plan_id: str, verb: str) -> tuple[dict[str, Any], str]:
    """The plan's state and the id of the approval it waits on; 404 / 409 naming why it cannot be decided."""
    plan = await read_plans(None, None, 1, 0, plan_id=plan_id)
    if not plan["items"]:
        raise ApiError(404, "not_found", f"plan {plan_id} not found")
    row = plan["items"][0]
    if row["status"] != "pending_approval":
        said = {"approved": f"was already approved by {row['decided_by']}",
                "rejected": f"was rejected by {row['decided_by']} ({row['decision_comment']}); a rejected plan "
                            "cannot be approved or rejected again",
                "no_action": "has nothing to order or promote", "created": "is still being prepared"}  # fmt: skip
        raise ApiError(409, "not_pending", f"plan {plan_id} cannot be {verb}: it {said[row['status']]}")
    values, pending = await thread_values(runtime, plan_id)
    if not pending:
        raise ApiError(409, "not_pending", f"plan {plan_id} is not waiting for a decision")
    return values, pending[0]["id"]


async def _resume(runtime: Runtime, plan_id: str, interrupt_id: str, decisions: list[dict[str, Any]],
                  principal: Principal) -> dict[str, Any]:  # fmt: skip
    body = RunCreate(assistant_id=ASSISTANT, command=CommandIn(resume={"decisions": decisions}),
                     metadata={"decision_by": principal.id}, multitask_strategy="reject")  # fmt: skip
    run = await runtime.manager.start(plan_id, body, principal, "wait", interrupt_id=interrupt_id)
    result = await runtime.manager.result(plan_id, run.run_id)
    if result.get("__error__"):
        raise ApiError(500, "plan_failed", f"finalizing the plan failed: {result['__error__'].get('message')}")
    return await read_plan(runtime, plan_id)


@router.post("/plans/{plan_id}/approve", responses=errors(403, 404, 409), summary="Approve a plan (with edits)")
async def approve_plan(plan_id: PlanIdPath, body: ApproveRequest, res: ResourcesDep, principal: Approver) -> dict[
        str, Any]:  # fmt: skip
    """Approve every line, or change some first: ``edits`` sets a line's ``order_qty`` and/or ``discount`` (0
    drops it); each edit is checked against the plan's budget, discount and margin limits and your authority (422
    naming the edit). Writes the purchase orders and promotions, attributed to you. 409 when the plan is not waiting
    for a decision (already approved, rejected, or still being prepared); 403 beyond your authority."""
    runtime = _runtime(res)
    values, interrupt_id = await _pending(runtime, plan_id, "approved")
    return await _resume(runtime, plan_id, interrupt_id, _decisions(values, body, principal), principal)


@router.post("/plans/{plan_id}/reject", responses=errors(403, 404, 409), summary="Reject a plan")
async def reject_plan(plan_id: PlanIdPath, body: RejectRequest, res: ResourcesDep, principal: Approver) -> dict[
        str, Any]:  # fmt: skip
    """Reject the whole plan with a reason: nothing is written, and it can never be approved afterwards."""
    runtime = _runtime(res)
    values, interrupt_id = await _pending(runtime, plan_id, "rejected")
    decisions = [{"type": "reject", "message": body.reason} for _ in plan_actions(values)]  # type: ignore[arg-type]
    return await _resume(runtime, plan_id, interrupt_id, decisions, principal)


@router.get("/plans/{plan_id}/events", responses=errors(404, 409), summary="The plan's event flow")
async def get_plan_events(plan_id: PlanIdPath, res: ResourcesDep, _: Viewer) -> dict[str, Any]:
    """``{plan_id, events: [{event_type, created_at, actor, payload, step, checkpoint_id}]}``, oldest first:
    created, data_analysis, inventory_analysis, marketing_analysis, supervisor_decision, reflection,
    final_decision (the plan put to the approver), approved | rejected (who and why), finalized; derived from
    the thread's checkpoint history."""
    runtime = _runtime(res)
    await read_plans(None, None, 1, 0, plan_id=plan_id, must_exist=True)
    return {"plan_id": plan_id, "events": await plan_events(runtime, plan_id)}


@router.get("/plans/{plan_id}/series", responses=errors(404, 409), summary="Each line's sales, forecast and stock")
async def get_plan_series(
    plan_id: PlanIdPath, res: ResourcesDep, _: Viewer,
    history_days: Annotated[int, Query(ge=7, le=400, description="Days of sales before the plan to include.")] = 56,
) -> dict[str, Any]:  # fmt: skip
    """``{plan_id, starts_on, lines: [{item_id, name, history: {dates, units}, forecast: {dates, p50, p90, source,
    note}, stock: {on_hand, on_order, start, order_qty, arrives_on, arrives_at, projected, without_order}, limits:
    {max_order_qty, max_discount}}]}``: the sales before the plan's first day, the plan's forecast over lead time +
    horizon, the end-of-day stock projected under P50 demand (start = on hand + on order; the order, as written once
    decided, arrives on ``arrives_on``) with and without the order, and the bounds of an approver's edit (0: not
    editable). ``lines`` is empty while the plan is being prepared."""
    return await plan_series(_runtime(res), plan_id, history_days)
