"""``consolidate`` and ``reflection``: the plan lines within the budget, then how far to trust them.

``consolidate`` keeps the inventory planner's orders when they fit the plan's budget. When they do not, it funds them
by expected profit per dollar, block by block of units (``ml.budget.allocate_budget``): returns diminish as an order
grows (each further unit is less likely to sell), so the least valuable units of every line are cut first, never a
whole line at a stroke, and each cut line says how many units were cut and why. Promotions cost margin, not
budget. Each line carries the seed's fields (``item_id``, ``recommended_order_qty``, ``recommended_discount``,
``confidence``, ``rationale``) and the figures behind them.

``reflection`` (the RMN seed's reflection record) scores the plan's confidence 0-1 from its lines' confidence,
weighted by what they spend, lists the risks (severity and mitigation) and the bias checks it ran, and compares the
confidence with the policy's threshold (``planning.min_confidence_pct``): below it the plan is marked as needing a
closer review, and the approval request says so. The record ends with the approver's brief (``graphs.planning.brief``:
a template, or an LLM's summary and further risks held to the plan's own numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist
from typing import Any

from graphs.planning.brief import brief_for
from graphs.planning.state import PlanningState
from ml.budget import BudgetLine, Increment, allocate_budget
from tools.deps import current
from tools.scopes import jsonable

IMPORTANCE_RANK = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True)
class _Funded:
    funded: int
    cut: str | None


def _stockout_risk(position: float, qty: int, mean: float, sd: float) -> float:
    if sd <= 0:
        return 0.0 if position + qty >= mean else 1.0
    return round(1 - NormalDist(mean, sd).cdf(position + qty), 4)


def _budget_lines(state: PlanningState) -> list[BudgetLine]:
    lines = []
    for sku, inv in (state.get("inventory_lines") or {}).items():
        if inv["order_qty"] <= 0:
            continue
        facts = state["items_facts"][sku]
        lines.append(BudgetLine(key=sku, requested=int(inv["order_qty"]),
                                increments=[Increment(**i) for i in inv["increments"]],
                                priority=IMPORTANCE_RANK.get(str(facts["importance"]), 3)))  # fmt: skip
    return lines


async def consolidate(state: PlanningState) -> dict[str, Any]:
    """Node: the plan lines, funded within the budget, and the plan's totals."""
    budget = float(state["budget"])
    requested = _budget_lines(state)
    asked = sum(inc.cost for line in requested for inc in line.increments)
    if asked <= budget:  # the budget does not bind: every order stands as planned (EOQ rounding included)
        funded: dict[str, Any] = {line.key: _Funded(line.requested, None) for line in requested}
        binding, profit = False, sum(inc.expected_profit for line in requested for inc in line.increments)
    else:
        allocation = allocate_budget(requested, budget)
        funded = {a.key: _Funded(a.funded, a.cut) for a in allocation.lines}
        binding, profit = True, float(allocation.total_profit)
    inventory, marketing, forecasts = state.get("inventory_lines") or {}, state.get("marketing_lines") or {}, \
        state.get("forecasts") or {}  # fmt: skip
    expected_on = (date.fromisoformat(state["starts_on"]) + timedelta(days=int(state["constraints"]["lead_time_days"])))
    lines = []
    for item in state["items"]:
        sku = str(item["item_id"])
        facts, inv, mk, fc = state["items_facts"][sku], inventory[sku], marketing.get(sku) or {}, forecasts[sku]
        got = funded.get(sku)
        qty = int(got.funded) if got is not None else 0
        cost = round(qty * float(facts["unit_cost"]), 2)
        discount = float(mk.get("discount") or 0.0)
        rationale = list(inv["rationale"])
        cut = got.cut if got is not None else None
        if cut:
            rationale.append(cut)
        if mk.get("reason"):
            rationale.append(f"promotion: {mk['reason']}")
        confidence = float(fc["confidence"]) - (0.1 if cut else 0.0)
        lines.append({
            "item_id": int(sku), "name": facts["name"], "recommended_order_qty": qty,
            "recommended_discount": round(discount, 3), "confidence": round(max(0.05, confidence), 2),
            "rationale": "; ".join(rationale), "unit_cost": float(facts["unit_cost"]), "cost": cost,
            "requested_order_qty": int(inv["order_qty"]), "cut": cut, "expected_on": expected_on.isoformat() if qty
            else None, "order_up_to": inv["order_up_to"], "safety_stock": inv["safety_stock"],
            "reorder_point": inv["reorder_point"], "eoq": inv["eoq"], "short_history": inv["short_history"],
            "stockout_risk": _stockout_risk(inv["position"], qty, inv["demand_mean"], inv["demand_sd"]),
            "forecast_source": fc["source"],
            "promotion": {k: mk.get(k) for k in ("starts_on", "ends_on", "economics", "measurement", "elasticity")}
            if discount > 0 else None,
        })  # fmt: skip
    total = round(sum(line["cost"] for line in lines), 2)
    cut_lines = [line["item_id"] for line in lines if line["cut"]]
    summary = {"total_cost": total, "budget": budget, "budget_binding": binding,
               "expected_profit": round(profit, 2), "lines_cut": cut_lines,
               "orders": sum(1 for line in lines if line["recommended_order_qty"] > 0),
               "promotions": sum(1 for line in lines if line["recommended_discount"] > 0),
               "model_version": next((f["model_version"] for f in forecasts.values() if f.get("model_version")), None),
               "priority_rule": "units funded by expected profit per dollar (stock-out risk x margin), block by block; "
                                "ties by product importance (policy:planning#budget)"}  # fmt: skip
    return {"lines": jsonable(lines), "summary": jsonable(summary)}


def _risks(state: PlanningState, lines: list[dict[str, Any]], service_level: float) -> list[dict[str, Any]]:
    risks = []
    fallback = [line["item_id"] for line in lines if line["forecast_source"] != "model"]
    if fallback:
        risks.append({"risk": f"{len(fallback)} item(s) planned on a fallback forecast: {fallback}",
                      "severity": "high" if len(fallback) > len(lines) / 2 else "medium",
                      "mitigation": "count their stock and check each order against recent sales"})  # fmt: skip
    exposed = [line["item_id"] for line in lines if line["stockout_risk"] > (1 - service_level) + 0.10]
    if exposed:
        risks.append({"risk": f"stock-out risk above {1 - service_level + 0.10:.0%} after the plan for {exposed}",
                      "severity": "high", "mitigation": "raise the budget or expedite those orders"})  # fmt: skip
    cut = [line["item_id"] for line in lines if line["cut"]]
    if cut:
        risks.append({"risk": f"the budget cut units from {cut}", "severity": "medium",
                      "mitigation": "raise the budget to fund them; the cut units are the least valuable"})  # fmt: skip
    wide = [line["item_id"] for line in lines if (state["forecasts"][str(line["item_id"])]["horizon_p50"] or 0) > 0
            and state["forecasts"][str(line["item_id"])]["horizon_p90"]
            > 1.6 * state["forecasts"][str(line["item_id"])]["horizon_p50"]]  # fmt: skip
    if wide:
        risks.append({"risk": f"uncertain demand (P90 over 1.6x P50 over the horizon) for {wide}", "severity": "low",
                      "mitigation": "review stock mid-horizon; safety stock covers the P90 band"})  # fmt: skip
    weak = [line["item_id"] for line in lines if line["promotion"] and not
            (line["promotion"].get("measurement") or {}).get("detectable", True)]  # fmt: skip
    if weak:
        risks.append({"risk": f"the promotion of {weak} is too short to measure its lift", "severity": "low",
                      "mitigation": "run it longer or in more stores, as the measurement design says"})  # fmt: skip
    return risks


def _bias_checks(state: PlanningState, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    checks = []
    against_trend = []
    for line in lines:
        fc = state["forecasts"][str(line["item_id"])]
        trend, mean = fc.get("trend_pct"), float(fc.get("recent_daily") or 0)
        days = len(fc["p50"])
        if trend is not None and mean > 0 and days:
            forecast_daily = sum(fc["p50"]) / days
            if (trend > 15 and forecast_daily < 0.85 * mean) or (trend < -15 and forecast_daily > 1.15 * mean):
                against_trend.append(line["item_id"])
    checks.append({"check": "recency: the forecast does not run against a clear recent trend (over 15 % in 4 "
                   "weeks) from the last 4 weeks' level",
                   "result": "flag" if against_trend else "pass",
                   "detail": f"forecast against the trend for {against_trend}" if against_trend else
                   "forecasts follow the direction of the last 4 weeks"})  # fmt: skip
    over = [line["item_id"] for line in lines if line["recommended_order_qty"] > 0
            and line["recommended_order_qty"] > 2 * max(line["order_up_to"], 1)]  # fmt: skip
    checks.append({"check": "anchoring: no order above twice its order-up-to level", "result": "flag" if over else
                   "pass", "detail": f"orders above twice the target for {over}" if over else "every order is within "
                   "its target"})  # fmt: skip
    priors = [line["item_id"] for line in lines if line["promotion"]
              and (line["promotion"].get("elasticity") or {}).get("source") == "prior"]  # fmt: skip
    checks.append({"check": "optimism: promotions rest on measured elasticities", "result": "flag" if priors else
                   "pass", "detail": f"elasticity assumed (no promotions on record) for {priors}" if priors else
                   "every promotion's elasticity was measured (item or category)"})  # fmt: skip
    return checks


async def reflection(state: PlanningState) -> dict[str, Any]:
    """Node: confidence with rationale, risks, bias checks, and whether the plan needs a closer review."""
    policy = current().policy.planning
    lines = state.get("lines") or []
    weights = [max(line["cost"], 1.0) for line in lines]
    confidence = sum(w * line["confidence"] for w, line in zip(weights, lines, strict=True)) / sum(weights)
    reasons = [f"lines' confidence weighted by spend: {confidence:.2f}"]
    summary = state.get("summary") or {}
    if summary.get("budget_binding"):
        confidence -= 0.05
        reasons.append("the budget binds (-0.05)")
    checks = _bias_checks(state, lines)
    flagged = [c for c in checks if c["result"] == "flag"]
    if flagged:
        confidence -= 0.05 * len(flagged)
        reasons.append(f"{len(flagged)} bias check(s) flagged (-{0.05 * len(flagged):.2f})")
    confidence = round(min(1.0, max(0.0, confidence)), 2)
    threshold = policy.min_confidence_pct / 100
    needs_review = confidence < threshold
    verdict = (f"confidence {confidence:.2f} is below the policy threshold {threshold:.2f}: the plan needs a closer "
               "review (policy:planning#plan-review)" if needs_review else
               f"confidence {confidence:.2f} meets the policy threshold {threshold:.2f}")  # fmt: skip
    record = {"confidence": confidence, "rationale": "; ".join([*reasons, verdict]),
              "risks": _risks(state, lines, policy.service_level_pct / 100), "bias_checks": checks,
              "threshold": threshold, "needs_review": needs_review}  # fmt: skip
    brief, notes = await brief_for({**state, "reflection": record}, current().llm)
    record |= {"brief": brief, "risks": [*record["risks"], *brief["risks"]]}
    return {"reflection": jsonable(record), "notes": notes}
