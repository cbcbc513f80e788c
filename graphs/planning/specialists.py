"""The planning workflow's specialists: the one list the graph is built from, and what each one does.

- ``demand_analyst``: P50/P90 per item and day over lead time + horizon from the demand model, told the promotions
  on record for those days (a stated fallback for items with a short history), with the trend and weekly pattern
  in words and a confidence per item.
- ``inventory_planner`` (after the analyst): the order quantity per item from the forecast quantiles, with safety
  stock, reorder point, EOQ rounding and the stock-out risk (``ml.planning.plan_item``), and the expected profit
  of each block of units, which the budget step funds in order of value (``ml.budget``).
- ``marketing_planner`` (after the analyst, in parallel with the inventory planner): a discount only where it pays
  (excess stock, slow movers), within the plan's, the pricing rule's and the policy's limits, with the price
  elasticity estimated from the item's own promotions (its category's when it has too few), the expected lift,
  the margin impact and a measurement design sized from the item's sales variance (``ml.promotion``).

Every number comes from the data, the models or the policy file. Adding a specialist = one :class:`Specialist`
entry in :data:`SPECIALISTS` plus its tools in ``tools.planning.PLANNING_TOOLS``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from datetime import date, timedelta
from statistics import NormalDist
from typing import Any

import pandas as pd

from graphs.common.specialists import Specialist, SpecialistRegistry, SpecialistResult
from graphs.planning.state import PlanningState
from ml.budget import marginal_order_values
from ml.planning import ItemPlanInput, PlanningCosts, plan_item
from ml.promotion import choose_discount, estimate_elasticity, measurement_design, pooled_elasticity
from tools.deps import current
from tools.planning import PLANNING_TOOLS, describe_demand, forecast_items, planned_discounts, sales_history
from tools.scopes import jsonable

Z90 = NormalDist().inv_cdf(0.90)
COSTS = PlanningCosts()
"""Holding rate, order cost; the service level comes from the policy (``planning.service_level_pct``)."""


def costs() -> PlanningCosts:
    return PlanningCosts(holding_rate_per_year=COSTS.holding_rate_per_year, order_cost=COSTS.order_cost,
                         service_level=current().policy.planning.service_level_pct / 100)  # fmt: skip


def _skus(state: Mapping[str, Any]) -> list[int]:
    return [int(item["item_id"]) for item in state["items"]]


def _lead(state: Mapping[str, Any]) -> int:
    return int(state["constraints"]["lead_time_days"])


async def _history(state: Mapping[str, Any]) -> pd.DataFrame:
    return await sales_history(int(state["store_id"]), _skus(state), date.fromisoformat(state["starts_on"]))


def _confidence(source: str, p50: list[float], p90: list[float], history_days: int, min_history: int) -> float:
    """0-1 from how uncertain the total over lead time + horizon is: a model forecast starts at 0.95 and loses 1.5
    x the total's coefficient of variation (days independent, each day's sd read off its P50-P90 band); a
    fallback forecast is 0.45, or 0.3 on a short history."""
    if source != "model":
        return 0.3 if history_days < min_history else 0.45
    total = sum(p50)
    if total <= 0:
        return 0.35
    sd = math.sqrt(sum(((hi - lo) / Z90) ** 2 for lo, hi in zip(p50, p90, strict=True)))
    return round(min(0.95, max(0.35, 0.95 - 1.5 * sd / total)), 2)


async def demand_analyst(state: Mapping[str, Any]) -> SpecialistResult:
    """Forecast every item over lead time + horizon; describe its trend and weekly pattern."""
    skus, lead, horizon = _skus(state), _lead(state), int(state["horizon_days"])
    deps = current()
    min_history = deps.policy.planning.min_history_days
    history = await _history(state)
    promotions = await planned_discounts(int(state["store_id"]), skus, date.fromisoformat(state["starts_on"]),
                                         lead + horizon)  # fmt: skip
    forecasts = await asyncio.to_thread(forecast_items, history, skus, lead + horizon, deps.models.get("demand"),
                                        min_history, promotions)  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    findings = []
    for sku in skus:
        fc = forecasts[sku]
        words = describe_demand(history, sku)
        confidence = _confidence(fc.source, fc.p50, fc.p90, int(words["history_days"]), min_history)
        out[str(sku)] = {
            "p50": fc.p50, "p90": fc.p90, "source": fc.source, "model_version": fc.model_version, "note": fc.note,
            "lead_time_p50": round(sum(fc.p50[:lead]), 1), "horizon_p50": round(sum(fc.p50[lead:]), 1),
            "horizon_p90": round(sum(fc.p90[lead:]), 1), "confidence": confidence, **words,
        }  # fmt: skip
        findings.append(f"item {sku}: {out[str(sku)]['horizon_p50']:g} units expected over the {horizon}-day horizon "
                        f"(P90 {out[str(sku)]['horizon_p90']:g}); {words['trend']}; {words['seasonality']}; "
                        f"{fc.note}")  # fmt: skip
    fallback = [s for s in skus if forecasts[s].source != "model"]
    summary = f"forecast {len(skus)} item(s) over {lead + horizon} days (lead time {lead} + horizon {horizon})"
    if fallback:
        summary += f"; {len(fallback)} on the fallback forecast (lower confidence): {', '.join(map(str, fallback))}"
    return SpecialistResult(summary=summary, findings=findings, proposals=[out],
                            tools_used=list(PLANNING_TOOLS["demand_analyst"]))  # fmt: skip


def holding_per_unit_day(unit_cost: float) -> float:
    return unit_cost * COSTS.holding_rate_per_year / 365


async def inventory_planner(state: Mapping[str, Any]) -> SpecialistResult:
    """Order quantities from the forecast quantiles, and the value of each block of units for the budget."""
    lead, horizon = _lead(state), int(state["horizon_days"])
    plan_costs = costs()
    min_history = current().policy.planning.min_history_days
    out: dict[str, dict[str, Any]] = {}
    findings = []
    for sku in _skus(state):
        facts, fc = state["items_facts"][str(sku)], state["forecasts"][str(sku)]
        plan = plan_item(ItemPlanInput(
            sku=sku, on_hand=float(facts["on_hand"]), on_order=float(facts["on_order"]), p50=fc["p50"], p90=fc["p90"],
            lead_time_days=lead, review_days=horizon, unit_cost=float(facts["unit_cost"]),
            unit_price=float(facts["unit_price"]), history_days=int(facts["history_days"]),
        ), plan_costs, min_history_days=min_history)  # fmt: skip
        line = asdict(plan)
        if plan.order_qty > 0:
            step = max(1, math.ceil(plan.order_qty / 20))
            increments = marginal_order_values(
                position=plan.position, demand_mean=plan.demand_mean, demand_sd=plan.demand_sd,
                unit_margin=float(facts["unit_price"]) - float(facts["unit_cost"]), unit_cost=float(facts["unit_cost"]),
                holding_cost_per_unit=holding_per_unit_day(float(facts["unit_cost"])) * horizon, step=step,
                quantity=plan.order_qty,
            )  # fmt: skip
            line["increments"] = [asdict(i) for i in increments]
        else:
            line["increments"] = []
        out[str(sku)] = line
        findings.append(f"item {sku}: " + "; ".join(plan.rationale))
    ordering = [s for s, line in out.items() if line["order_qty"] > 0]
    summary = (f"{len(ordering)} of {len(out)} item(s) need an order to cover lead time {lead} + horizon {horizon} "
               f"days at a {plan_costs.service_level:.0%} service level")  # fmt: skip
    return SpecialistResult(summary=summary, findings=findings, proposals=[out],
                            tools_used=list(PLANNING_TOOLS["inventory_planner"]))  # fmt: skip


def _elasticities(history: pd.DataFrame, state: Mapping[str, Any]) -> dict[int, Any]:
    """Each item's elasticity from its own promotions; items with too few fall back to their category's."""
    own = {}
    for sku in _skus(state):
        rows = history[history["item"] == sku]
        own[sku] = estimate_elasticity(rows["sales"].to_numpy(float), rows["discount"].to_numpy(float),
                                       list(pd.to_datetime(rows["date"]).dt.date))  # fmt: skip
    by_category: dict[str, list[Any]] = {}
    for sku, value in own.items():
        if value.source == "item":
            by_category.setdefault(state["items_facts"][str(sku)]["category"], []).append(value)
    pooled = {category: pooled_elasticity(values) for category, values in by_category.items()}
    out = {}
    for sku, value in own.items():
        if value.source != "item":
            rows = history[history["item"] == sku]
            category = state["items_facts"][str(sku)]["category"]
            dates = list(pd.to_datetime(rows["date"]).dt.date)
            value = estimate_elasticity(rows["sales"].to_numpy(float), rows["discount"].to_numpy(float), dates,
                                        pooled=pooled.get(category))  # fmt: skip
        out[sku] = value
    return out


async def marketing_planner(state: Mapping[str, Any]) -> SpecialistResult:
    """A discount per item only where it pays, within every limit, with the design that would measure it."""
    lead, horizon = _lead(state), int(state["horizon_days"])
    policy = current().policy.planning
    history = await _history(state)
    elasticities = await asyncio.to_thread(_elasticities, history, state)
    promo_days = min(horizon, policy.max_promotion_days)
    starts = date.fromisoformat(state["starts_on"])
    out: dict[str, dict[str, Any]] = {}
    findings = []
    for sku in _skus(state):
        facts, fc = state["items_facts"][str(sku)], state["forecasts"][str(sku)]
        limit = min(float(state["max_discount"]), float(facts["max_discount"]))
        min_margin = max(float(facts["min_margin"]), policy.min_margin_pct / 100)
        position = float(facts["on_hand"]) + float(facts["on_order"])
        need = sum(fc["p50"])
        excess = max(0.0, position - need)
        elasticity = elasticities[sku]
        short = int(facts["history_days"]) < policy.min_history_days
        line: dict[str, Any] = {"elasticity": asdict(elasticity), "excess_units": round(excess, 1),
                                "max_discount": limit, "min_margin": min_margin}  # fmt: skip
        if short:
            line |= {"discount": 0.0, "reason": f"only {facts['history_days']} days of history (< "
                     f"{policy.min_history_days}): no promotion (policy:planning#short-history)"}  # fmt: skip
        else:
            choice = choose_discount(
                max_discount=limit, min_margin=min_margin, unit_price=float(facts["unit_price"]),
                unit_cost=float(facts["unit_cost"]), baseline_units=sum(fc["p50"][lead : lead + promo_days]) if lead
                < len(fc["p50"]) else 0.0, elasticity=elasticity.value, promo_days=promo_days, excess_units=excess,
                available_units=position, holding_cost_per_unit_day=holding_per_unit_day(float(facts["unit_cost"])),
                horizon_days=horizon,
            )  # fmt: skip
            line |= {"discount": choice.discount, "reason": choice.reason,
                     "economics": asdict(choice.economics) if choice.economics is not None else None}  # fmt: skip
            if choice.discount > 0 and choice.economics is not None:
                rows = history[(history["item"] == sku) & (history["discount"] == 0)]
                design = measurement_design(rows["sales"].to_numpy(float)[-112:], choice.economics.expected_lift,
                                            promo_days=promo_days)  # fmt: skip
                window_start = starts + timedelta(days=lead)
                line |= {"measurement": asdict(design), "starts_on": window_start.isoformat(),
                         "ends_on": (window_start + timedelta(days=promo_days - 1)).isoformat()}  # fmt: skip
        out[str(sku)] = line
        findings.append(f"item {sku}: {line['reason']}")
    promoted = [s for s, line in out.items() if line["discount"] > 0]
    summary = f"{len(promoted)} of {len(out)} item(s) get a promotion"
    if promoted:
        summary += ": " + ", ".join(f"{sku} at {out[sku]['discount']:.0%}" for sku in promoted)
    return SpecialistResult(summary=summary, findings=findings, proposals=[out],
                            tools_used=list(PLANNING_TOOLS["marketing_planner"]))  # fmt: skip


OUTPUT_KEY = {"demand_analyst": "forecasts", "inventory_planner": "inventory_lines",
              "marketing_planner": "marketing_lines"}  # fmt: skip
"""Where each specialist's result goes in the state."""

SPECIALISTS: tuple[Specialist, ...] = (
    Specialist("demand_analyst", "P50/P90 demand per item over lead time + horizon, trend and seasonality in words.",
               PLANNING_TOOLS["demand_analyst"], demand_analyst),
    Specialist("inventory_planner", "Order quantities from the forecast: safety stock, reorder point, EOQ, stock-out "
               "risk.", PLANNING_TOOLS["inventory_planner"], inventory_planner, after=("demand_analyst",)),
    Specialist("marketing_planner", "Discounts where they pay, with elasticity, lift, margin impact and a measurement "
               "design.", PLANNING_TOOLS["marketing_planner"], marketing_planner, after=("demand_analyst",)),
)  # fmt: skip

RESERVED = ("intake", "supervisor", "dispatch", "consolidate", "reflection", "approval", "finalize", "rejected")
REGISTRY = SpecialistRegistry(SPECIALISTS, known_tools={t for tools in PLANNING_TOOLS.values() for t in tools},
                              reserved=RESERVED)  # fmt: skip


def run_specialist(name: str) -> Callable[[PlanningState], Awaitable[dict[str, Any]]]:
    """The graph node of specialist ``name``: its analysis, and its output under its state key."""
    spec = REGISTRY[name]

    async def node(state: PlanningState) -> dict[str, Any]:
        result = await spec.act(state)
        return {
            "analyses": {name: {"summary": result.summary, "findings": result.findings, "tools": result.tools_used}},
            OUTPUT_KEY[name]: jsonable(result.proposals[0]),
        }

    node.__name__ = name
    return node
