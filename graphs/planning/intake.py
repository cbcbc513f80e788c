"""``intake``: check the request against the data and set the plan's frame (first day, budget, deepest discount).

The request is validated with the same model and checks the REST route uses (and written back normalised); a store
or item the database does not know is an error naming it (``items[1].item_id: ...``), so a Studio run fails the
way the API refuses. The plan's budget is
the request's, capped by the policy's per-plan budget; its deepest discount the request's, capped by the policy.
The request's ``current_stock`` replaces the inventory table's on-hand figure for this plan. The plan is indexed
(``plans``, status ``created``) under its thread id.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime
from pydantic import ValidationError

from graphs.planning.context import PlanningContext
from graphs.planning.request import CreatePlanRequest, check_request, plain
from graphs.planning.state import PlanningState
from tools.deps import current
from tools.planning import get_items, get_store, plan_start, record_plan


class PlanRequestError(ValueError):
    """The request names something the data does not have, or breaks a bound; the message names the field."""


def validate_request(state: PlanningState) -> CreatePlanRequest:
    raw = {key: state.get(key) for key in ("store_id", "horizon_days", "constraints", "items")}
    try:
        request = CreatePlanRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise PlanRequestError(f"{where}: {first['msg']}") from None
    problem = check_request(request)
    if problem is not None:
        raise PlanRequestError(problem)
    return request


async def intake(state: PlanningState, runtime: Runtime[PlanningContext]) -> dict[str, Any]:
    """Node: the store, the items' facts, the first day, the budget and the deepest discount."""
    request = validate_request(state)
    store = await get_store(request.store_id)
    if store is None:
        raise PlanRequestError(f"store_id: store {request.store_id} does not exist")
    starts = await plan_start(request.store_id)
    skus = [item.item_id for item in request.items]
    facts = await get_items(request.store_id, skus, starts)
    for index, sku in enumerate(skus):
        if sku not in facts:
            raise PlanRequestError(f"items[{index}].item_id: item {sku} is not stocked by store {request.store_id}")
    policy = current().policy.planning
    notes = []
    budget = min(request.constraints.budget_limit, policy.max_plan_budget_usd)
    if budget < request.constraints.budget_limit:
        notes.append(f"the request's budget {request.constraints.budget_limit:,.2f} is above the policy's per-plan "
                     f"budget: planning with {budget:,.2f} (policy:planning#budget)")  # fmt: skip
    max_discount = min(request.constraints.max_discount, policy.max_discount_pct / 100)
    if max_discount < request.constraints.max_discount:
        notes.append(f"the request's max_discount {request.constraints.max_discount:.0%} is above the policy's "
                     f"{max_discount:.0%}: promotions stay within it (policy:planning#discount-limits)")  # fmt: skip
    items_facts = {}
    for item in request.items:
        known = asdict(facts[item.item_id])
        known["recorded_on_hand"], known["on_hand"] = known["on_hand"], item.current_stock
        known["last_sale_on"] = known["last_sale_on"].isoformat() if known["last_sale_on"] else None
        items_facts[str(item.item_id)] = known
    principal = (runtime.context or {}).get("principal") or {}
    thread_id = str(get_config()["configurable"]["thread_id"])
    await record_plan(thread_id, request.model_dump(mode="json"), str(principal.get("id") or "unknown"))
    return {**plain(request), "store": asdict(store), "items_facts": items_facts, "starts_on": starts.isoformat(),
            "budget": round(budget, 2), "max_discount": max_discount, "notes": notes}  # fmt: skip
