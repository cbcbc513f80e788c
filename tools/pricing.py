"""Prices for the shop assistant: what a quantity of an item costs on a day, and a discount suggestion.

:func:`calculate` prices ``quantity`` units of a sku: the base price (``products.unit_price``), the deepest
promotion running that day for the (store, sku) (``promotions``; none, or no store given, is 0 %), capped by the
pricing rule in force that day (a sku rule overrides its category's rule) at the rule's ``max_discount``, and never
below the rule's minimum margin. The margin is the pricing rules' own definition, over the discounted price:
``(price - unit_cost) / price >= min_margin``, so the lowest price is ``unit_cost / (1 - min_margin)``. Without a
rule in force the planning limits of the policy file stand in. The unit price after discount is rounded to the cent
(half up) and never below that floor (rounded up to the cent); total = unit price x quantity, savings = base
total - total.

:func:`recommend` suggests a discount from the item's sales history: its price elasticity
(``ml.promotion.estimate_elasticity``; with too few promoted days, the same sku's estimate pooled over the other
stores, else the prior), the baseline of its recent unpromoted days and its stock, through the planning workflow's
``choose_discount`` economics within the rule's and the policy's bounds. It never writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any, Final

import pandas as pd

from ml.planning import PlanningCosts
from ml.promotion import PRIOR_ELASTICITY, PRIOR_SE, Elasticity, choose_discount, estimate_elasticity, pooled_elasticity
from tools.deps import current
from tools.inventory import NotFound, require_store

CENT: Final = Decimal("0.01")
HISTORY_DAYS: Final = 365
"""Days of sales history the elasticity is estimated from."""
BASELINE_DAYS: Final = 28
"""Recent days whose unpromoted sales give the baseline daily units."""
HORIZON_DAYS: Final = 28
"""Days of demand the stock is compared with (stock beyond them is excess)."""
PRIOR: Final = Elasticity(
    value=PRIOR_ELASTICITY,
    se=PRIOR_SE,
    promo_days=0,
    source="prior",
    clipped=False,
    raw=None,
    note="no sales history to estimate from: the prior",
)
ELASTICITY_FIELDS: Final = ("value", "se", "source", "promo_days", "note")

_PRODUCT_SQL: Final = "SELECT sku, name, category, unit_cost, unit_price FROM products WHERE sku = %s"

_RULE_SQL: Final = """
SELECT rule_id, scope, rule_type, min_margin, max_discount, valid_from, valid_to FROM pricing_rules pr
WHERE pr.active AND pr.valid_from <= %(on)s AND (pr.valid_to IS NULL OR pr.valid_to >= %(on)s)
  AND ((pr.scope = 'sku' AND pr.sku = %(sku)s) OR (pr.scope = 'category' AND pr.category = %(category)s))
ORDER BY (pr.scope = 'sku') DESC, pr.valid_from DESC, pr.rule_id
LIMIT 1
"""

_PROMOTION_SQL: Final = """
SELECT promotion_id, discount, starts_on, ends_on, source FROM promotions
WHERE store_id = %s AND sku = %s AND starts_on <= %s AND ends_on >= %s
ORDER BY discount DESC, promotion_id
LIMIT 1
"""


async def _one(query: Any, params: Any) -> dict[str, Any] | None:
    async with current().pool.connection() as conn:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
    return dict(row) if row is not None else None


async def product(sku: int) -> dict[str, Any]:
    """The catalog row of ``sku`` (:class:`NotFound` when there is none)."""
    row = await _one(_PRODUCT_SQL, (sku,))
    if row is None:
        raise NotFound("sku", f"{sku} not found in the catalog", {"sku": sku})
    return row


async def rule_in_force(sku: int, category: str, on: date) -> dict[str, Any] | None:
    """The pricing rule valid on ``on`` for the sku: its own rule, else its category's; None when neither."""
    return await _one(_RULE_SQL, {"sku": sku, "category": category, "on": on})


def bounds(rule: dict[str, Any] | None, unit_cost: Decimal) -> dict[str, Any]:
    """The discount cap and margin floor a price must keep: the rule's, or the policy's planning limits."""
    planning = current().policy.planning
    if rule is not None:
        max_discount, min_margin = Decimal(rule["max_discount"]), Decimal(rule["min_margin"])
        source = f"pricing rule {rule['rule_id']} ({rule['scope']} {rule['rule_type']})"
    else:
        max_discount = Decimal(str(planning.max_discount_pct)) / 100
        min_margin = Decimal(str(planning.min_margin_pct)) / 100
        source = "policy planning limits (no pricing rule in force)"
    floor = unit_cost / (1 - min_margin)
    return {"max_discount": max_discount, "min_margin": min_margin, "floor_price": floor, "source": source}


def _price_after(base: Decimal, discount: Decimal, floor: Decimal) -> Decimal:
    price = (base * (1 - discount)).quantize(CENT, rounding=ROUND_HALF_UP)
    return max(price, floor.quantize(CENT, rounding=ROUND_CEILING))


def _pct(value: Decimal) -> float:
    return float((value * 100).quantize(CENT, rounding=ROUND_HALF_UP))


def _rule_view(rule: dict[str, Any] | None) -> dict[str, Any] | None:
    if rule is None:
        return None
    return {"rule_id": int(rule["rule_id"]), "scope": rule["scope"], "rule_type": rule["rule_type"],
            "max_discount_percent": _pct(Decimal(rule["max_discount"])),
            "min_margin_percent": _pct(Decimal(rule["min_margin"])), "valid_from": rule["valid_from"].isoformat(),
            "valid_to": rule["valid_to"].isoformat() if rule["valid_to"] else None}  # fmt: skip


def _discount(promo: Decimal, limits: dict[str, Any], base: Decimal) -> tuple[Decimal, str | None]:
    """The discount applied and what limited it (None: the promotion's own depth, or no promotion)."""
    margin_cap = max(Decimal(0), 1 - limits["floor_price"] / base) if base > 0 else Decimal(0)
    applied, limited = promo, None
    if limits["max_discount"] < applied:
        applied, limited = limits["max_discount"], "max_discount"
    if margin_cap < applied:
        applied, limited = margin_cap, "min_margin"
    return applied, limited


def _explain(promo: dict[str, Any] | None, store_id: int | None, applied: Decimal, limited: str | None,
             limits: dict[str, Any]) -> str:  # fmt: skip
    if promo is None:
        where = "no store given: store promotions do not apply" if store_id is None else \
            f"no promotion runs for this item in store {store_id} that day"  # fmt: skip
        return f"{where}; the base price applies"
    text = f"promotion {promo['promotion_id']} takes {_pct(Decimal(promo['discount'])):g} % off"
    if limited == "max_discount":
        text += f", capped at {_pct(applied):g} % by the {limits['source']} (its largest discount)"
    elif limited == "min_margin":
        text += (f", capped at {_pct(applied):g} % so the price keeps the {_pct(limits['min_margin']):g} % minimum "
                 f"margin of the {limits['source']}")  # fmt: skip
    return text


async def calculate(sku: int, quantity: int, store_id: int | None = None, on: date | None = None) -> dict[str, Any]:
    """The seed's price calculation for ``quantity`` units of ``sku`` on ``on`` (today when None); see the module
    docstring. Raises :class:`NotFound` for an unknown sku or store and ValueError for a quantity below 1."""
    if quantity < 1:
        raise ValueError(f"quantity: must be at least 1, got {quantity}")
    day = on or date.today()
    item = await product(sku)
    if store_id is not None:
        await require_store(store_id)
    rule = await rule_in_force(sku, item["category"], day)
    promo = await _one(_PROMOTION_SQL, (store_id, sku, day, day)) if store_id is not None else None
    base, cost = Decimal(item["unit_price"]), Decimal(item["unit_cost"])
    limits = bounds(rule, cost)
    applied, limited = _discount(Decimal(promo["discount"]) if promo else Decimal(0), limits, base)
    unit = _price_after(base, applied, limits["floor_price"])
    total = unit * quantity
    return {
        "sku": sku, "product_name": item["name"], "store_id": store_id, "on": day.isoformat(),
        "base_price": float(base), "quantity": quantity, "discount_percent": _pct(applied),
        "unit_price_after_discount": float(unit), "total_cost": float(total), "savings": float(base * quantity - total),
        "applicable_rules": [int(rule["rule_id"])] if rule else [],
        "promotion": None if promo is None else {
            "promotion_id": int(promo["promotion_id"]), "discount_percent": _pct(Decimal(promo["discount"])),
            "starts_on": promo["starts_on"].isoformat(), "ends_on": promo["ends_on"].isoformat(),
            "source": promo["source"]},
        "pricing_rule": _rule_view(rule), "limited_by": limited,
        "min_price": float(limits["floor_price"].quantize(CENT, rounding=ROUND_CEILING)),
        "explanation": _explain(promo, store_id, applied, limited, limits),
    }  # fmt: skip


# -- recommendation -------------------------------------------------------------------------------------------


async def _history(sku: int) -> pd.DataFrame:
    """``date, store_id, units, discount`` for the sku in every store over the year before its latest sale."""
    async with current().pool.connection() as conn:
        cur = await conn.execute(
            "SELECT date, store_id, units, discount FROM sales_daily WHERE sku = %(sku)s "
            "AND date > (SELECT max(date) FROM sales_daily WHERE sku = %(sku)s) - %(days)s ORDER BY store_id, date",
            {"sku": sku, "days": HISTORY_DAYS},
        )
        rows = await cur.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=["date", "store_id", "units", "discount"])
    frame["units"] = frame["units"].astype(float)
    frame["discount"] = frame["discount"].astype(float)
    return frame


def _estimate(rows: pd.DataFrame, pooled: Elasticity | None = None) -> Elasticity:
    return estimate_elasticity(rows["units"].to_numpy(float), rows["discount"].to_numpy(float),
                               list(pd.to_datetime(rows["date"]).dt.date), pooled=pooled)  # fmt: skip


def elasticity(history: pd.DataFrame, store_id: int | None) -> Elasticity:
    """The item's elasticity: each store's own estimate pooled (all stores, or the store's own when it has enough
    promoted days), falling back to the pool of the other stores, then the prior."""
    per_store = {int(s): _estimate(rows) for s, rows in history.groupby("store_id")}
    own_estimates = [e for e in per_store.values() if e.source == "item"]
    pooled = pooled_elasticity(own_estimates) if own_estimates else None
    if store_id is None:
        return pooled if pooled is not None else next(iter(per_store.values()), PRIOR)
    mine = per_store.get(store_id)
    if mine is not None and mine.source == "item":
        return mine
    others = [e for s, e in per_store.items() if s != store_id and e.source == "item"]
    rows = history[history["store_id"] == store_id]
    return _estimate(rows, pooled_elasticity(others) if others else None) if len(rows) else PRIOR


def baseline_daily(history: pd.DataFrame, store_id: int | None) -> float:
    """Mean daily units of the last 28 days without a discount (over every store stocked when no store is given),
    the last 28 days as a whole when all were promoted."""
    rows = history if store_id is None else history[history["store_id"] == store_id]
    if rows.empty:
        return 0.0
    recent = rows[pd.to_datetime(rows["date"]) > pd.to_datetime(rows["date"]).max() - timedelta(days=BASELINE_DAYS)]
    daily = recent.groupby("date").agg(units=("units", "sum"), discount=("discount", "max"))
    plain = daily[daily["discount"] == 0]
    chosen = plain if len(plain) else daily
    return float(chosen["units"].mean()) if len(chosen) else 0.0


async def _stock_position(sku: int, store_id: int | None) -> int:
    row = await _one("SELECT coalesce(sum(on_hand + on_order), 0)::bigint AS units FROM inventory WHERE sku = %s "
                     "AND (%s::int IS NULL OR store_id = %s)", (sku, store_id, store_id))  # fmt: skip
    return int(row["units"]) if row else 0


def _effect(economics: Any) -> dict[str, Any] | None:
    if economics is None:
        return None
    return {"expected_lift_percent": round(100 * economics.expected_lift, 1),
            "baseline_units": round(economics.baseline_units_sold, 1),
            "expected_units": round(economics.promo_units_sold, 1),
            "extra_units": round(economics.incremental_units, 1),
            "margin_percent_after": round(100 * economics.margin_pct, 1),
            "margin_impact": round(economics.margin_impact, 2),
            "holding_cost_saved": round(economics.holding_cost_saved, 2),
            "net_benefit": round(economics.net_benefit, 2)}  # fmt: skip


async def recommend(sku: int, store_id: int | None = None, on: date | None = None) -> dict[str, Any]:
    """A discount suggestion for ``sku`` (in one store, or all) from its history, elasticity and stock, under the
    pricing rule in force on ``on`` (today when None); see the module docstring. Reads only."""
    item = await product(sku)
    if store_id is not None:
        await require_store(store_id)
    deps = current()
    planning = deps.policy.planning
    rule = await rule_in_force(sku, item["category"], on or date.today())
    cost, price = Decimal(item["unit_cost"]), Decimal(item["unit_price"])
    limits = bounds(rule, cost)
    max_discount = min(float(limits["max_discount"]), planning.max_discount_pct / 100)
    min_margin = max(float(limits["min_margin"]), planning.min_margin_pct / 100)
    history = await _history(sku)
    if store_id is not None and history[history["store_id"] == store_id].empty:
        raise NotFound("sku", f"store {store_id} has no sales of sku {sku}", {"sku": sku, "store_id": store_id})
    value = await asyncio.to_thread(elasticity, history, store_id)
    daily = baseline_daily(history, store_id)
    available = await _stock_position(sku, store_id)
    promo_days = min(planning.max_promotion_days, HORIZON_DAYS)
    history_days = int(history[history["store_id"] == store_id]["date"].nunique()) if store_id is not None else \
        int(history["date"].nunique())  # fmt: skip
    common = {"unit_price": float(price), "unit_cost": float(cost), "elasticity": value.value}
    if price <= 0:
        choice_discount, economics, reason = 0.0, None, "the item has no price to discount"
    elif history_days < planning.min_history_days:
        choice_discount, economics = 0.0, None
        reason = (f"only {history_days} days of sales history (< {planning.min_history_days}): no reliable "
                  "baseline, keep the price")  # fmt: skip
    else:
        choice = choose_discount(
            max_discount=max_discount, min_margin=min_margin, baseline_units=daily * promo_days,
            promo_days=promo_days, horizon_days=HORIZON_DAYS, available_units=float(available),
            excess_units=max(0.0, available - daily * HORIZON_DAYS),
            holding_cost_per_unit_day=float(cost) * PlanningCosts().holding_rate_per_year / 365, **common,
        )  # fmt: skip
        choice_discount, economics, reason = choice.discount, choice.economics, choice.reason
    floor = cost / (1 - Decimal(str(min_margin)))
    suggested = _price_after(price, Decimal(str(choice_discount)), floor)
    pct = round(100 * choice_discount, 2)
    return {
        "sku": sku, "product_name": item["name"], "store_id": store_id, "current_price": float(price),
        "recommended_discount_percent": pct, "recommended_price": float(suggested),
        "promotion_days": promo_days if pct > 0 else 0, "reason": reason, "expected_effect": _effect(economics),
        "elasticity": {k: v for k, v in asdict(value).items() if k in ELASTICITY_FIELDS},
        "baseline_daily_units": round(daily, 3), "stock_position": available,
        "bounds": {"max_discount_percent": round(100 * max_discount, 2),
                   "min_margin_percent": round(100 * min_margin, 2),
                   "min_price": float(floor.quantize(CENT, rounding=ROUND_CEILING)), "pricing_rule": _rule_view(rule)},
        "approval_role": deps.policy.approval.required_role("promotion_discount", pct) if pct > 0 else None,
        "writes": "none: a suggestion only; nothing is changed",
    }  # fmt: skip
