"""Inventory maths used by planning: safety stock, reorder point, EOQ, ABC classification.

Pure functions with the textbook formulas (z is the standard normal quantile of the service level):

* safety stock, demand and lead-time uncertainty: ``SS = z * sqrt(L * sd_d^2 + d^2 * sd_L^2)``
  (``L`` lead time in days, ``sd_d`` standard deviation of daily demand, ``d`` mean daily demand,
  ``sd_L`` standard deviation of the lead time in days);
* safety stock from P50/P90 forecasts over the lead time: each day's spread is read off its quantiles,
  ``sd_i = (P90_i - P50_i) / z(0.90)`` (normal approximation), days are independent, so
  ``SS = z * sqrt(sum_i sd_i^2)``;
* reorder point: ``ROP = d * L + SS`` (or the lead-time P50 sum + SS);
* economic order quantity: ``EOQ = sqrt(2 * D * S / H)`` (``D`` annual demand in units, ``S`` cost per
  order, ``H`` holding cost per unit per year);
* ABC: items sorted by value, descending; an item is A while the cumulative share of value *before* it is
  below ``a_share`` (so the item that crosses 80 % is still A), B while it is below ``b_share``, else C;
  items with no value are C.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from statistics import NormalDist
from typing import TypeVar

from ml.errors import InputError

K = TypeVar("K", bound=Hashable)
_Z90 = NormalDist().inv_cdf(0.90)


def _non_negative(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise InputError(f"must be a finite number >= 0, got {value!r}", field=name)
    return v


def z_value(service_level: float) -> float:
    """Standard normal quantile of a cycle service level in [0.5, 1)."""
    sl = float(service_level)
    if not 0.5 <= sl < 1.0:
        raise InputError(f"must be in [0.5, 1), got {service_level!r}", field="service_level")
    return NormalDist().inv_cdf(sl)


def safety_stock(
    demand_std: float,
    lead_time_days: float,
    service_level: float = 0.95,
    *,
    mean_daily_demand: float = 0.0,
    lead_time_std: float = 0.0,
) -> float:
    """``z * sqrt(L * sd_d^2 + d^2 * sd_L^2)``: units held against demand and lead-time variation."""
    sd = _non_negative("demand_std", demand_std)
    lt = _non_negative("lead_time_days", lead_time_days)
    d = _non_negative("mean_daily_demand", mean_daily_demand)
    sd_lt = _non_negative("lead_time_std", lead_time_std)
    return z_value(service_level) * math.sqrt(lt * sd * sd + d * d * sd_lt * sd_lt)


def safety_stock_from_quantiles(p50: Sequence[float], p90: Sequence[float], service_level: float = 0.95) -> float:
    """Safety stock from the P50/P90 daily forecasts covering the lead time (one entry per day)."""
    if len(p50) != len(p90):
        raise InputError(f"p50 has {len(p50)} days but p90 has {len(p90)}", field="p90")
    if len(p50) == 0:
        raise InputError("no forecast days: pass one P50/P90 pair per lead-time day", field="p50")
    var = 0.0
    for i, (lo, hi) in enumerate(zip(p50, p90, strict=True)):
        lo_v, hi_v = _non_negative("p50", lo), _non_negative("p90", hi)
        if hi_v < lo_v:
            raise InputError(f"day {i + 1}: P90 {hi_v:g} is below P50 {lo_v:g}", field="p90")
        var += ((hi_v - lo_v) / _Z90) ** 2
    return z_value(service_level) * math.sqrt(var)


def reorder_point(mean_daily_demand: float, lead_time_days: float, safety_stock: float) -> float:
    """``d * L + SS``: the inventory position at which to order."""
    return (
        _non_negative("mean_daily_demand", mean_daily_demand) * _non_negative("lead_time_days", lead_time_days)
        + _non_negative("safety_stock", safety_stock)
    )


def eoq(annual_demand: float, order_cost: float, holding_cost: float) -> float:
    """``sqrt(2 * D * S / H)``: the order size minimising ordering plus holding cost."""
    d = _non_negative("annual_demand", annual_demand)
    s = _non_negative("order_cost", order_cost)
    h = _non_negative("holding_cost", holding_cost)
    if h == 0:
        raise InputError("must be > 0", field="holding_cost")
    return math.sqrt(2.0 * d * s / h)


def reorder_quantity(inventory_position: float, reorder_point: float, order_size: float) -> float:
    """Units to order now: 0 above the reorder point, else ``max(order_size, ROP - position)``.

    ``inventory_position`` is on hand + on order - backorders; ``order_size`` is usually the EOQ.
    """
    rop = _non_negative("reorder_point", reorder_point)
    q = _non_negative("order_size", order_size)
    pos = float(inventory_position)
    if pos > rop:
        return 0.0
    return max(q, rop - pos)


def abc_classify(values: Mapping[K, float], a_share: float = 0.8, b_share: float = 0.95) -> dict[K, str]:
    """ABC class per item from its value (e.g. annual revenue); see the module docstring for the rule."""
    if not 0 < a_share < b_share <= 1:
        raise InputError(f"need 0 < a_share < b_share <= 1, got {a_share}, {b_share}", field="a_share")
    clean = {k: _non_negative(f"values[{k!r}]", v) for k, v in values.items()}
    total = sum(clean.values())
    ranked = sorted(clean.items(), key=lambda kv: -kv[1])  # stable: ties keep input order
    out: dict[K, str] = {}
    before = 0.0
    for key, value in ranked:
        share_before = before / total if total > 0 else 1.0
        if value <= 0:
            out[key] = "C"
        elif share_before < a_share:
            out[key] = "A"
        elif share_before < b_share:
            out[key] = "B"
        else:
            out[key] = "C"
        before += value
    return out
