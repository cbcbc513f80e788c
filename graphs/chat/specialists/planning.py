"""The planning specialist: start a store plan (it then waits for an approver) and report plans' status.

Intents: ``planning.start`` builds the plan request ``POST /plans`` takes (the store's stocked items with their
stock on hand, the policy's default lead time, plan budget and deepest discount) and hands it to the server's
plan starter (``tools.deps.current().plan_starter``) in the caller's name: the graph puts the caller's principal
in ``ask.previous["_principal"]``; creating a plan needs the operator role, as ``POST /plans`` does. The specialist
itself writes nothing. ``planning.status`` reads the plans index (``tools.planning.plan_rows``): one plan by id, a
store's latest plans, or the latest plans of all stores.
"""

from __future__ import annotations

from typing import Any, Final

from graphs.chat.specialists.base import Answer, Ask, Table, clarify, count, failed, money, names, pct, table
from graphs.planning.request import MAX_COVER_DAYS
from rag.policy import ROLES
from tools import planning
from tools.deps import current

DEFAULT_HORIZON: Final = 14
"""Days a plan started from the chat covers unless the question names a coming period."""
MAX_ITEMS: Final = 200
"""The most items one plan request may list."""
START_ROLE: Final = "operator"
"""The least role that may start a plan (as ``POST /plans``)."""
STATUS_LIMIT: Final = 5
DEFAULT_PRINCIPAL: Final = {"id": "chat", "role": "viewer"}


async def answer(ask: Ask) -> Answer:
    """The answer to a ``planning.*`` question."""
    if ask.intent == "planning.start":
        return await _start(ask)
    return await _status(ask)


# -- start a plan -------------------------------------------------------------------------------------------------


def _principal(ask: Ask) -> dict[str, Any]:
    principal = ask.previous.get("_principal")
    return dict(principal) if isinstance(principal, dict) else dict(DEFAULT_PRINCIPAL)


def may_start(principal: dict[str, Any]) -> bool:
    """Whether the principal's role is at least :data:`START_ROLE`."""
    role = str(principal.get("role") or "")
    return role in ROLES and ROLES.index(role) >= ROLES.index(START_ROLE)


def _unknown_stores(ask: Ask) -> list[str]:
    return [u.text for u in ask.entities.unknown if u.kind == "store"]


def _store_for_start(ask: Ask) -> int | Answer:
    """The one store to plan for, or the answer to give instead (unknown store, question back)."""
    unknown = _unknown_stores(ask)
    if unknown:
        return Answer(f"There is no {names(unknown)}.", kind="unknown")
    stores = ask.entities.stores
    if len(stores) > 1:
        listed = names([f"store {s.store_id} ({s.name})" for s in stores])
        return clarify(f"A plan covers one store: which one, {listed}?", store_ids=[s.store_id for s in stores])
    if stores:
        return stores[0].store_id
    previous = ask.previous.get("store_ids") or []
    if len(previous) == 1 and str(previous[0]).isdigit():
        return int(previous[0])
    return clarify('Which store should the plan be for? (for example "start a plan for store 3")')


def _horizon(ask: Ask, lead_time: int) -> int:
    """The coming period the question names (when the forecast covers it), else :data:`DEFAULT_HORIZON`."""
    period = ask.entities.period
    longest = MAX_COVER_DAYS - lead_time
    if period is not None and period.start > ask.as_of and 1 <= period.days <= longest:
        return period.days
    return min(DEFAULT_HORIZON, longest)


def plan_request(ask: Ask, store_id: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``POST /plans`` body for the store: its items, the policy's lead time, budget and deepest discount."""
    rules = current().policy.planning
    lead_time = min(rules.default_lead_time_days, 30)
    return {
        "store_id": store_id,
        "horizon_days": _horizon(ask, lead_time),
        "constraints": {"lead_time_days": lead_time, "budget_limit": float(rules.max_plan_budget_usd),
                        "max_discount": round(rules.max_discount_pct / 100, 4)},
        "items": [{"item_id": int(i["item_id"]), "current_stock": int(i["current_stock"])} for i in items[:MAX_ITEMS]],
    }  # fmt: skip


async def _start(ask: Ask) -> Answer:
    store = _store_for_start(ask)
    if isinstance(store, Answer):
        return store
    principal = _principal(ask)
    if not may_start(principal):
        return Answer(f"Starting a plan needs the {START_ROLE} role; you are signed in as "
                      f"{principal.get('role') or 'unknown'}. Ask an operator to start it.", kind="refusal",
                      focus={"store_ids": [store]})  # fmt: skip
    try:
        starter = current().plan_starter
    except Exception as exc:  # any tool failure becomes an error answer naming the tool
        return failed("start_plan", exc)
    if starter is None:
        return Answer("Plans cannot be started from this process (it does not run the planning workflow); use "
                      "POST /plans on the RIMAS server.", kind="error", tools=["start_plan"],
                      focus={"store_ids": [store]})  # fmt: skip
    try:
        found = await planning.get_store(store)
        items = await planning.stocked_items(store, list(ask.entities.skus) or None) if found else []
    except Exception as exc:
        return failed("start_plan", exc)
    if found is None:
        return Answer(f"There is no store {store}.", kind="unknown", focus={"store_ids": [store]})
    if not items:
        what = f"item {names([str(s) for s in ask.entities.skus])}" if ask.entities.skus else "any item"
        return Answer(f"Store {store} ({found.name}) does not stock {what}, so there is nothing to plan.",
                      kind="unknown", focus={"store_ids": [store]})  # fmt: skip
    request = plan_request(ask, store, items)
    try:
        plan_id = await starter(request, principal, ask.previous.get("_asked"))
    except Exception as exc:
        return failed("start_plan", exc)
    return Answer(_started_text(plan_id, found, request), table=_request_table(plan_id, request),
                  tools=["start_plan"], focus={"plan_ids": [plan_id], "store_ids": [store]})  # fmt: skip


def _started_text(plan_id: str, store: planning.StoreFacts, request: dict[str, Any]) -> str:
    c = request["constraints"]
    return (f"I started plan {plan_id} for store {store.store_id} ({store.name}, {store.city}): "
            f"{count(len(request['items']))} items over {count(request['horizon_days'])} days, lead time "
            f"{count(c['lead_time_days'])} days, budget up to {money(c['budget_limit'])}, discounts up to "
            f"{pct(100 * c['max_discount'], 0)}. It runs in the background and then waits for an approver's "
            f"decision; see it with GET /plans/{plan_id}.")  # fmt: skip


def _request_table(plan_id: str, request: dict[str, Any]) -> Table:
    return table(f"Plan {plan_id} request for store {request['store_id']}", ["item_id", "current_stock"],
                 [[i["item_id"], i["current_stock"]] for i in request["items"]],
                 units={"current_stock": "units"})  # fmt: skip


# -- plan status --------------------------------------------------------------------------------------------------


def _status_query(ask: Ask) -> tuple[str | None, int | None]:
    """(plan id, store id) to read: the plan or store named, else the previous answer's plan, else all."""
    if ask.entities.plan_ids:
        return ask.entities.plan_ids[0], None
    if ask.entities.store_ids:
        return None, ask.entities.store_ids[0]
    previous = ask.previous.get("plan_ids") or []
    if isinstance(previous, str):
        previous = [previous]
    return (str(previous[0]), None) if previous else (None, None)


def _plan_words(row: dict[str, Any]) -> str:
    parts = [f"plan {row['plan_id']} (store {row['store_id']}, {count(row['horizon_days'])} days): "
             f"{str(row['status']).replace('_', ' ')}"]  # fmt: skip
    if row.get("total_cost") is not None:
        parts.append(f"total cost {money(row['total_cost'])}")
    if row.get("line_count") is not None:
        parts.append(f"{count(row['line_count'])} lines")
    if row.get("confidence") is not None:
        parts.append(f"confidence {pct(100 * row['confidence'])}")
    parts.append(f"created {row['created_at']:%Y-%m-%d} by {row['created_by']}")
    if row.get("decided_by"):
        parts.append(f"decided by {row['decided_by']}")
    return ", ".join(parts)


async def _status(ask: Ask) -> Answer:
    unknown = _unknown_stores(ask)
    if unknown and not ask.entities.plan_ids:
        return Answer(f"There is no {names(unknown)}.", kind="unknown")
    plan_id, store_id = _status_query(ask)
    try:
        rows = await planning.plan_rows(plan_id=plan_id, store_id=store_id, limit=STATUS_LIMIT)
    except Exception as exc:
        return failed("plan_status", exc)
    if not rows:
        return _no_plans(plan_id, store_id)
    lines = [_plan_words(r) for r in rows]
    if plan_id is not None:
        text = f"{lines[0][0].upper()}{lines[0][1:]}."
    else:
        scope = f"Store {store_id}'s latest plans" if store_id is not None else "The latest plans"
        text = f"{scope}:\n" + "\n".join(f"- {line}" for line in lines)
    grid = table("Plans", ["plan_id", "store_id", "horizon_days", "status", "total_cost", "line_count", "confidence",
                           "created_by", "decided_by", "created_at"],
                 [[r["plan_id"], r["store_id"], r["horizon_days"], r["status"], r["total_cost"], r["line_count"],
                   r["confidence"], r["created_by"], r["decided_by"], r["created_at"].isoformat()] for r in rows],
                 units={"total_cost": "USD", "horizon_days": "days"})  # fmt: skip
    focus: dict[str, Any] = {"plan_ids": [r["plan_id"] for r in rows],
                             "store_ids": sorted({int(r["store_id"]) for r in rows})}  # fmt: skip
    return Answer(text, table=grid, tools=["plan_status"], focus=focus)


def _no_plans(plan_id: str | None, store_id: int | None) -> Answer:
    if plan_id is not None:
        return Answer(f"There is no plan {plan_id} in the plans index (a plan just started appears once its run "
                      "has begun).", kind="unknown", tools=["plan_status"], focus={"plan_ids": [plan_id]})  # fmt: skip
    if store_id is not None:
        return Answer(f"Store {store_id} has no plans yet.", tools=["plan_status"], focus={"store_ids": [store_id]})
    return Answer("There are no plans yet.", tools=["plan_status"])
