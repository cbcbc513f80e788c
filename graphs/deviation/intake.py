"""``score`` and ``assess``: what the specialists must know before anyone proposes anything.

``score`` loads the deviation (by id, or by order id) and the order's facts with its stored prediction: the
delay probability, its top factors in words and the model version. ``assess`` takes the severity and reasons
the scoring pipeline derived from the policy (the one place they are computed), adds the 30-day KPI context
of the order's warehouse block, mode and importance, and retrieves the policy passages and similar past cases
the specialists will cite: policies and cases come from separate collections.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import asdict
from typing import Any

from graphs.deviation.state import DeviationState
from tools.knowledge import search_cases, search_policies
from tools.orders import get_order
from tools.resolutions import load_deviation, set_status
from tools.segments import segment_context

TOPICS = {
    "shipment": "shipping mode upgrade paths and carrier delays for late parcels",
    "customer": "customer communication about delivery delays, apology limits and channels",
    "payment": "refund tiers and compensation for late deliveries, store credit",
    "escalation": "escalation priorities, tickets and response targets",
}
"""One retrieval query per specialist topic: each specialist finds the passages of its own subject."""


def _json(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


async def score(state: DeviationState) -> dict[str, Any]:
    """Node: the deviation, the order's facts and its score."""
    deviation = await load_deviation(state.get("deviation_id"), state.get("order_id"))
    facts = await get_order(deviation["order_id"])
    if facts is None:
        raise LookupError(f"order {deviation['order_id']} of deviation {deviation['deviation_id']} is not recorded")
    await set_status(deviation["deviation_id"], "in_progress")
    order = _json(asdict(facts))
    probability = order.get("delay_probability")
    if probability is None:
        probability = deviation.get("delay_probability")
    return {
        "deviation_id": deviation["deviation_id"], "order_id": deviation["order_id"], "order": order,
        "score": {"delay_probability": probability, "severity": order.get("severity"),
                  "top_features": order.get("top_features") or [], "model_version": order.get("model_version"),
                  "anomaly_score": order.get("anomaly_score")},
        "severity": deviation["severity"], "reasons": list(deviation.get("reasons") or []),
    }  # fmt: skip


async def assess(state: DeviationState) -> dict[str, Any]:
    """Node: KPI context, policy passages per topic, similar past cases."""
    order = state.get("order") or {}
    kpis = await segment_context(
        str(order.get("warehouse_block")), str(order.get("mode_of_shipment")), str(order.get("product_importance"))
    )
    passages: dict[str, dict[str, Any]] = {}
    for topic in TOPICS.values():
        for passage in await search_policies(f"{state.get('severity')} deviation: {topic}", k=3):
            item = _json(asdict(passage)) if not isinstance(passage, dict) else passage
            passages.setdefault(str(item["citation"]), item)
    situation = (f"{state.get('severity')} delay, warehouse {order.get('warehouse_block')}, "
                 f"{order.get('mode_of_shipment')}, {order.get('product_importance')} importance; "
                 f"{'; '.join(state.get('reasons') or [])}")  # fmt: skip
    cases = [_json(asdict(c)) if not isinstance(c, dict) else c for c in await search_cases(situation, k=3)]
    return {"kpis": _json(kpis), "policy_passages": list(passages.values()), "similar_cases": cases}
