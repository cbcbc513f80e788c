"""Reading plans: the ``plans`` index, a plan's state rendered as the seed's ``PlanResponse``, and its event flow
derived from the checkpoint history (no separate events table: the history is the record).

Event types follow the RIMAS seed: ``created`` (intake), ``data_analysis`` (demand_analyst), ``inventory_analysis``
(inventory_planner), ``marketing_analysis`` (marketing_planner), ``supervisor_decision`` (the consolidated plan),
``reflection``, ``final_decision`` (the plan put to the approver), ``approved`` or ``rejected`` (who, when, the
comment and each line's decision) and ``finalized`` (the purchase orders and promotions written).

:func:`plan_series` gives each line's charts: the recent sales, the plan's own P50/P90 forecast, the projected
stock with and without the line's order, and the bounds an approver's edit must keep.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from graphs.planning.review import PO, max_discount, max_order_qty
from server.errors import ApiError
from server.runtime import store
from server.runtime.core import Runtime
from server.runtime.serde import to_jsonable
from tools.deps import current
from tools.planning import project_stock, sales_history

NODE_EVENTS = {"intake": "created", "demand_analyst": "data_analysis", "inventory_planner": "inventory_analysis",
               "marketing_planner": "marketing_analysis", "consolidate": "supervisor_decision",
               "reflection": "reflection", "finalize": "finalized", "rejected": "closed"}  # fmt: skip

_COLUMNS = ("plan_id, store_id, horizon_days, status, total_cost::float AS total_cost, line_count, "
            "confidence::float AS confidence, created_by, decided_by, decision_comment, decided_at, created_at, "
            "updated_at")  # fmt: skip


async def read_plans(
    status: str | None, store_id: int | None, limit: int, offset: int, *, plan_id: str | None = None,
    must_exist: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """``{total, items}`` of the plans index, newest first (404 for a missing ``plan_id`` when ``must_exist``)."""
    where = {"status": status, "store": store_id, "plan": plan_id}
    condition = ("(%(status)s::text IS NULL OR status = %(status)s) AND (%(store)s::int IS NULL OR store_id = "
                 "%(store)s) AND (%(plan)s::text IS NULL OR plan_id = %(plan)s)")  # fmt: skip
    async with current().pool.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) AS n FROM plans WHERE {condition}", where)  # noqa: S608
        total = (await cur.fetchone() or {"n": 0})["n"]
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM plans WHERE {condition} ORDER BY created_at DESC, plan_id "  # noqa: S608
            "LIMIT %(limit)s OFFSET %(offset)s", where | {"limit": limit, "offset": offset},
        )  # fmt: skip
        items = [to_jsonable(dict(r)) for r in await cur.fetchall()]
    if must_exist and not items:
        raise ApiError(404, "not_found", f"plan {plan_id} not found")
    return {"total": int(total), "items": items}


async def thread_values(runtime: Runtime, plan_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The plan thread's current values and its pending interrupts."""
    row = await store.fetch_thread(runtime.pool, plan_id)
    assistant = runtime.assistant_of(row)
    if assistant is None:
        return {}, []
    snapshot = await assistant.graph.aget_state({"configurable": {"thread_id": plan_id, "checkpoint_ns": ""}})
    pending = (row.get("interrupts") or []) if row["status"] == "interrupted" else []
    return to_jsonable(dict(snapshot.values)), pending


async def read_plan(runtime: Runtime, plan_id: str, *, trace_id: str | None = None) -> dict[str, Any]:
    """The seed's ``PlanResponse`` plus the totals, the reflection, the decision and what was written."""
    index = (await read_plans(None, None, 1, 0, plan_id=plan_id, must_exist=True))["items"][0]
    values, _ = await thread_values(runtime, plan_id)
    if trace_id is None:  # the run that made the plan
        async with runtime.pool.connection() as conn:
            cur = await conn.execute("SELECT run_id::text AS run_id FROM runs WHERE thread_id = %s "
                                     "ORDER BY created_at LIMIT 1", (plan_id,))  # fmt: skip
            first = await cur.fetchone()
        trace_id = first["run_id"] if first else None
    summary = values.get("summary") or {}
    return {
        "plan_id": plan_id, "status": index["status"], "store_id": index["store_id"],
        "horizon_days": index["horizon_days"], "recommendations": values.get("lines") or [],
        "metadata": {"model_version": summary.get("model_version"), "generated_at": index["created_at"],
                     "trace_id": trace_id},
        "summary": summary, "reflection": values.get("reflection"), "routing": values.get("routing"),
        "outcome": values.get("outcome"), "decided_by": index["decided_by"], "comment": index["decision_comment"],
        "notes": values.get("notes") or [], "starts_on": values.get("starts_on"),
    }  # fmt: skip


def _task_event(name: str, result: Any, when: Any) -> dict[str, Any] | None:
    kind = NODE_EVENTS.get(name)
    if kind is None or result is None:
        return None
    return {"event_type": kind, "created_at": when, "actor": f"agent:{name}", "payload": to_jsonable(result)}


def _decision_event(result: dict[str, Any], when: Any) -> dict[str, Any] | None:
    decisions = result.get("decisions") or []
    if not decisions:
        return None
    kind = "rejected" if all(d.get("type") == "reject" for d in decisions) else "approved"
    actors = sorted({f"{(d.get('actor') or {}).get('id')} ({(d.get('actor') or {}).get('role')})" for d in decisions})
    comment = next((d.get("message") for d in decisions if d.get("message")), None)
    decided_at = max((str(d.get("decided_at")) for d in decisions if d.get("decided_at")), default=when)
    return {"event_type": kind, "created_at": decided_at, "actor": ", ".join(actors), "payload": {
        "comment": comment, "decisions": to_jsonable(decisions)}}  # fmt: skip


async def plan_events(runtime: Runtime, plan_id: str) -> list[dict[str, Any]]:
    """The plan's events, oldest first, from its checkpoint history."""
    row = await store.fetch_thread(runtime.pool, plan_id)
    assistant = runtime.assistant_of(row)
    if assistant is None:
        return []
    config: Any = {"configurable": {"thread_id": plan_id, "checkpoint_ns": ""}}
    snapshots = [s async for s in assistant.graph.aget_state_history(config)]
    snapshots.reverse()
    events = []
    for index, snapshot in enumerate(snapshots):
        finished = snapshots[index + 1].created_at if index + 1 < len(snapshots) else snapshot.created_at
        step = (snapshot.metadata or {}).get("step")
        for task in snapshot.tasks:
            found: list[dict[str, Any] | None] = []
            if task.name == "approval":
                for item in task.interrupts:
                    found.append({"event_type": "final_decision", "created_at": snapshot.created_at,
                                  "actor": "agent:approval", "payload": to_jsonable(item.value.get("plan"))
                                  if isinstance(item.value, dict) else None})  # fmt: skip
                if isinstance(task.result, dict):
                    found.append(_decision_event(task.result, finished))
            else:
                found.append(_task_event(task.name, task.result, finished))
            for event in found:
                if event is not None:
                    event |= {"step": step, "checkpoint_id": snapshot.config["configurable"]["checkpoint_id"]}
                    events.append(event)
    return events


def _ordered(values: dict[str, Any], line: dict[str, Any]) -> int:
    """The units the line orders: what was written once the plan is decided, else the recommendation."""
    outcome = values.get("outcome") or {}
    if outcome.get("status") in ("approved", "rejected"):
        written = [a for a in outcome.get("actions") or [] if a.get("name") == PO and a.get("item_id") ==
                   line["item_id"] and a.get("outcome") == "written"]  # fmt: skip
        return int(written[0]["quantity"]) if written else 0
    return int(line["recommended_order_qty"])


async def plan_series(runtime: Runtime, plan_id: str, history_days: int) -> dict[str, Any]:
    """Per line: ``history`` (the ``history_days`` of sales before the plan's first day), ``forecast`` (the plan's
    dates, P50, P90, source and note), ``stock`` (the start = on hand + on order, the order and its arrival day,
    the projected end-of-day stock under P50 demand with and without it) and ``limits`` of an approver's edit."""
    index = (await read_plans(None, None, 1, 0, plan_id=plan_id, must_exist=True))["items"][0]
    values, _ = await thread_values(runtime, plan_id)
    lines, forecasts, facts = values.get("lines") or [], values.get("forecasts") or {}, values.get("items_facts") or {}
    out: dict[str, Any] = {"plan_id": plan_id, "starts_on": values.get("starts_on"), "lines": []}
    if not lines or not values.get("starts_on"):  # still being prepared
        return out
    starts, lead = date.fromisoformat(values["starts_on"]), int(values["constraints"]["lead_time_days"])
    history = await sales_history(int(index["store_id"]), [int(line["item_id"]) for line in lines], starts,
                                  history_days)  # fmt: skip
    for line in lines:
        sku = str(line["item_id"])
        fc, item = forecasts[sku], facts[sku]
        rows = history[history["item"] == line["item_id"]].sort_values("date")
        start, qty = int(item["on_hand"]) + int(item["on_order"]), _ordered(values, line)
        out["lines"].append({
            "item_id": line["item_id"], "name": line["name"],
            "history": {"dates": [d.date().isoformat() for d in rows["date"]],
                        "units": [int(u) for u in rows["sales"]]},
            "forecast": {"dates": [(starts + timedelta(days=d)).isoformat() for d in range(len(fc["p50"]))],
                         "p50": fc["p50"], "p90": fc["p90"], "source": fc["source"], "note": fc["note"]},
            "stock": {"on_hand": int(item["on_hand"]), "on_order": int(item["on_order"]), "start": start,
                      "order_qty": qty, "arrives_on": (starts + timedelta(days=lead)).isoformat(),
                      "arrives_at": lead, "projected": project_stock(start, fc["p50"], lead, qty),
                      "without_order": project_stock(start, fc["p50"], None, 0)},
            "limits": {"max_order_qty": max_order_qty(line) if line["recommended_order_qty"] > 0 else 0,
                       "max_discount": max_discount(values, line) if line["recommended_discount"] > 0 else 0.0},
        })  # fmt: skip
    return out
