"""One item's replenishment line from its daily P50/P90 demand forecast (periodic review, order-up-to).

A plan is made every ``review_days`` days; an order placed now arrives after ``lead_time_days``, and the next
order (made at the next review) arrives ``review_days`` later still. The stock on hand and on order must
therefore cover the *protection interval*, lead time + review period:

* ``protection_demand`` = sum of the P50 over the ``L + R`` days; ``demand_sd`` = the spread read off the
  quantiles, ``sqrt(sum_i ((P90_i - P50_i) / z(0.90))^2)`` (days independent, normal approximation);
* ``safety_stock`` = ``z(service level) * demand_sd`` (:func:`ml.inventory.safety_stock_from_quantiles`);
* order-up-to level ``S = protection_demand + safety_stock``; position = on hand + on order.

Decision rule: **order whenever the position is below S**. In a periodic review an item not ordered now
gets nothing before ``R + L`` days, so waiting until the position falls to the lead-time reorder point would
leave the review period uncovered. The reorder point (lead-time P50 + the lead time's own safety stock) is
still reported: a position at or below it means the item is likely to run out before this order arrives.

Quantity: the lost-sales rule of the replenishment policy (:func:`ml.replenishment.uncovered_demand_quantile`):
the service-level quantile of the review period's demand that the stock left after the lead time will not meet.
With stock to spare through the lead time that is exactly ``S - position``; when the stock runs out before the
order arrives, the lead-time demand it cannot meet is lost and not ordered for (an inventory-position rule would
order it and carry it as excess). Rounded *up* to the pack size (``pack_size``, 1 = single units). When the EOQ
(``sqrt(2 D K / H)``; ``D`` annual demand, by default the forecast's mean daily P50 x 365, ``K`` the order
cost, ``H`` the yearly holding cost per unit) exceeds that need, buying more now pays only if it saves a later
order: the quantity is raised by whole review periods of P50 demand (each one skips one future order, saving
``K``) while the quantity stays within the EOQ and the extra holding of that period's units is below ``K``.
The ``j``-th extra period's ``d R`` units wait ``j R`` days longer than if the ``j``-th next order brought
them, so they cost ``h d R * j R`` more to hold (``h`` holding cost per unit and day): the ``j``-th period is
added while that is below ``K``.

Short history (``history_days < min_history_days``): the forecast is not trusted enough to hold safety stock
against its spread or to buy ahead of need, so the plan covers lead time + review period at P50 only (the rule's
median), with no EOQ rounding, and is flagged (``short_history``). The stock-out risks are the normal-approximation
probabilities that the protection interval's demand exceeds the position with and without the order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from ml.errors import InputError
from ml.inventory import eoq as eoq_formula
from ml.inventory import safety_stock_from_quantiles
from ml.replenishment import uncovered_demand_quantile

log = logging.getLogger(__name__)

_Z90 = NormalDist().inv_cdf(0.90)
DAYS_PER_YEAR = 365.0


@dataclass(frozen=True)
class PlanningCosts:
    """Cost parameters of the plan (the service level is the policy's, 95 %)."""

    holding_rate_per_year: float = 0.25
    """Holding cost per unit per year as a share of the unit cost."""
    order_cost: float = 25.0
    """Fixed cost of placing one purchase order (EOQ)."""
    service_level: float = 0.95
    """Target cycle service level."""


@dataclass(frozen=True)
class ItemPlanInput:
    """One item's stock, forecast and economics at plan time."""

    sku: int
    on_hand: float
    on_order: float
    """Units already ordered, arriving within the lead time."""
    p50: Sequence[float]
    """Daily P50 demand for (at least) the next ``lead_time_days + review_days`` days; extra days are ignored."""
    p90: Sequence[float]
    """Daily P90, same days."""
    lead_time_days: int
    review_days: int
    """The plan horizon: the next plan is made after this many days."""
    unit_cost: float
    unit_price: float
    history_days: int
    """Days of sales history the forecast stands on."""
    annual_demand: float | None = None
    """Units per year for the EOQ; default: the forecast's mean daily P50 x 365."""
    pack_size: int = 1
    """Order multiple (case size); 1 = single units."""


@dataclass(frozen=True)
class ItemPlan:
    """The replenishment line and the figures behind it."""

    sku: int
    order_qty: int
    order_up_to: float
    position: float
    lead_time_demand: float
    protection_demand: float
    safety_stock: float
    reorder_point: float
    eoq: float
    demand_mean: float
    demand_sd: float
    stockout_risk: float
    stockout_risk_without_order: float
    short_history: bool
    rationale: list[str]


def _number(name: str, value: float, *, minimum: float = 0.0, strict: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"must be a number, got {value!r}", field=name) from None
    if not math.isfinite(v) or v < minimum or (strict and v == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise InputError(f"must be a finite number {bound}, got {value!r}", field=name)
    return v


def _whole(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"must be a whole number >= {minimum}, got {value!r}", field=name)
    return value


def check_costs(costs: PlanningCosts) -> PlanningCosts:
    """The costs, validated (holding rate > 0, order cost >= 0, service level in [0.5, 1))."""
    _number("holding_rate_per_year", costs.holding_rate_per_year, strict=True)
    _number("order_cost", costs.order_cost)
    sl = _number("service_level", costs.service_level)
    if not 0.5 <= sl < 1.0:
        raise InputError(f"must be in [0.5, 1), got {costs.service_level!r}", field="service_level")
    return costs


def _forecast_days(item: ItemPlanInput, days: int) -> tuple[list[float], list[float]]:
    """The first ``days`` P50/P90 values, validated (finite, >= 0, P90 >= P50)."""
    if len(item.p50) != len(item.p90):
        raise InputError(f"p50 has {len(item.p50)} days but p90 has {len(item.p90)}", field="p90")
    if len(item.p50) < days:
        raise InputError(f"{len(item.p50)} forecast days; lead time + review need {days}", field="p50")
    p50 = [_number("p50", v) for v in item.p50[:days]]
    p90 = [_number("p90", v) for v in item.p90[:days]]
    for i, (lo, hi) in enumerate(zip(p50, p90, strict=True)):
        if hi < lo:
            raise InputError(f"day {i + 1}: P90 {hi:g} is below P50 {lo:g}", field="p90")
    return p50, p90


def _spread(p50: Sequence[float], p90: Sequence[float]) -> float:
    """Standard deviation of the summed demand, read off the daily quantiles."""
    return math.sqrt(sum(((hi - lo) / _Z90) ** 2 for lo, hi in zip(p50, p90, strict=True)))


def _risk(stock: float, mean: float, sd: float) -> float:
    """P(demand > stock) for demand ~ N(mean, sd), rounded to 4 places."""
    if sd <= 0:
        return 0.0 if stock >= mean else 1.0
    return round(1.0 - NormalDist(mean, sd).cdf(stock), 4)


def _round_up(quantity: float, pack: int) -> int:
    if quantity <= 0:
        return 0
    return math.ceil(quantity / pack - 1e-9) * pack


def _extra_periods(
    need: int, eoq: float, period_demand: float, review: int, holding_day: float, costs: PlanningCosts, pack: int
) -> int:
    """Units added to ``need`` by EOQ rounding: whole review periods while each pays for its holding."""
    if period_demand <= 0 or eoq <= need:
        return 0
    qty = need
    j = 1
    while True:
        candidate = _round_up(need + j * period_demand, pack)
        extra_holding = holding_day * period_demand * j * review
        if candidate > eoq or extra_holding >= costs.order_cost:
            return qty - need
        qty = candidate
        j += 1


def plan_item(item: ItemPlanInput, costs: PlanningCosts = PlanningCosts(), *, min_history_days: int = 56) -> ItemPlan:
    """The replenishment line of one item (see the module docstring for the rule)."""
    check_costs(costs)
    lead = _whole("lead_time_days", item.lead_time_days, 0)
    review = _whole("review_days", item.review_days, 1)
    pack = _whole("pack_size", item.pack_size, 1)
    _whole("history_days", item.history_days, 0)
    _whole("min_history_days", min_history_days, 0)
    on_hand, on_order = _number("on_hand", item.on_hand), _number("on_order", item.on_order)
    unit_cost = _number("unit_cost", item.unit_cost, strict=True)
    unit_price = _number("unit_price", item.unit_price)
    p50, p90 = _forecast_days(item, lead + review)

    position = on_hand + on_order
    lead_demand = sum(p50[:lead])
    protection = sum(p50)
    demand_sd = _spread(p50, p90)
    short = item.history_days < min_history_days
    full_ss = safety_stock_from_quantiles(p50, p90, costs.service_level)
    safety = 0.0 if short else full_ss
    lead_ss = safety_stock_from_quantiles(p50[:lead], p90[:lead], costs.service_level) if lead else 0.0
    rop = lead_demand + (0.0 if short else lead_ss)
    order_up_to = protection + safety
    holding_year = unit_cost * costs.holding_rate_per_year
    annual = (
        _number("annual_demand", item.annual_demand)
        if item.annual_demand is not None
        else protection / (lead + review) * DAYS_PER_YEAR
    )
    eoq = eoq_formula(annual, costs.order_cost, holding_year)

    cover_quantile = 0.5 if short else costs.service_level
    gap = uncovered_demand_quantile(position, lead_demand, _spread(p50[:lead], p90[:lead]), protection - lead_demand,
                                    _spread(p50[lead:], p90[lead:]), cover_quantile)  # fmt: skip
    need = _round_up(gap, pack)
    extra = 0
    if need > 0 and not short:
        period_demand = sum(p50[lead:])
        extra = _extra_periods(need, eoq, period_demand, review, holding_year / DAYS_PER_YEAR, costs, pack)
    qty = need + extra

    rationale = _rationale(
        item,
        position=position,
        lead_demand=lead_demand,
        protection=protection,
        safety=safety,
        order_up_to=order_up_to,
        rop=rop,
        eoq=eoq,
        need=need,
        extra=extra,
        short=short,
        min_history_days=min_history_days,
        costs=costs,
        unit_price=unit_price,
    )
    plan = ItemPlan(
        sku=item.sku,
        order_qty=qty,
        order_up_to=order_up_to,
        position=position,
        lead_time_demand=lead_demand,
        protection_demand=protection,
        safety_stock=safety,
        reorder_point=rop,
        eoq=eoq,
        demand_mean=protection,
        demand_sd=demand_sd,
        stockout_risk=_risk(position + qty, protection, demand_sd),
        stockout_risk_without_order=_risk(position, protection, demand_sd),
        short_history=short,
        rationale=rationale,
    )
    log.debug(
        "planned item",
        extra={
            "sku": item.sku,
            "order_qty": qty,
            "order_up_to": round(order_up_to, 2),
            "position": position,
            "short_history": short,
        },
    )
    return plan


def _rationale(
    item: ItemPlanInput,
    *,
    position: float,
    lead_demand: float,
    protection: float,
    safety: float,
    order_up_to: float,
    rop: float,
    eoq: float,
    need: int,
    extra: int,
    short: bool,
    min_history_days: int,
    costs: PlanningCosts,
    unit_price: float,
) -> list[str]:
    lead, review = item.lead_time_days, item.review_days
    out = [
        f"cover lead time {lead} + review {review} days: P50 demand {protection:.1f} "
        f"(lead time alone {lead_demand:.1f})"
    ]
    if short:
        out.append(
            f"short history ({item.history_days} days < {min_history_days}): planned at P50 only, "
            f"no safety stock, no EOQ rounding"
        )
    else:
        out.append(f"safety stock {safety:.1f} for a {costs.service_level:.0%} service level")
    out.append(
        f"order-up-to level {order_up_to:.1f}; position {position:g} (on hand {item.on_hand:g} "
        f"+ on order {item.on_order:g})"
    )
    if need == 0:
        out.append("position covers the order-up-to level: no order")
        return out
    if position <= rop:
        out.append(f"position at or below the reorder point {rop:.1f}: stock may run out before the order arrives")
    pack = f" (rounded up to packs of {item.pack_size})" if item.pack_size > 1 else ""
    if position < lead_demand:
        out.append(f"order {need}{pack}: the stock runs out before the order arrives, so it covers the {review} "
                   "days after its arrival (demand nothing can meet before then is lost, not ordered for)")
    else:
        out.append(f"order {need} to reach the order-up-to level{pack}")
    if extra:
        out.append(
            f"+{extra} toward the EOQ {eoq:.0f}: the extra units save a later order ({costs.order_cost:g}) "
            f"for less holding cost"
        )
    margin = unit_price - item.unit_cost
    out.append(
        f"order {need + extra} units, {(need + extra) * item.unit_cost:.2f} at cost (margin {margin:.2f} per unit sold)"
    )
    return out
