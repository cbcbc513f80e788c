"""What the planning workflow reads and writes: a store's items, their sales history and forecast, the plans index,
and the two planning ledgers (purchase orders and promotions).

Reads: :func:`get_store`, :func:`get_items` (catalog, stock, lead time and the pricing rule in force for each sku),
:func:`sales_history`, :func:`forecast_items` (the demand model's P50/P90 per day, or a stated fallback for an item
whose history is too short, or when no model is loaded) and :func:`describe_demand` (trend and weekly pattern in
words, computed from the history). Writes: :func:`record_plan` / :func:`set_plan_status` (the ``plans`` index; the
plan itself is the thread's state) and :func:`place_purchase_order` / :func:`start_promotion`, each one idempotent
ledger row (``tools.ledger.insert_once``) keyed on the plan's thread and line, attributed to the approver. A purchase
order adds its quantity to the inventory's ``on_order`` in the same transaction, once.

A plan starts the day after the store's latest recorded sales (the data's "today"): the forecast covers the days
after the history it stands on.

:func:`reorder_preview` (the chat's "what should I reorder") keeps its last forecasts per store in memory, and the
plans made from them: the key holds everything a forecast depends on (the items, the first day, the horizon, the
model version, the planned promotions and a digest of the history's rows computed by PostgreSQL), so a changed sale
or a new model misses it; a plan is kept by its item's facts (stock, lead time, prices), read on every call.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd
from psycopg.types.json import Jsonb

from ml.planning import ItemPlanInput, PlanningCosts, plan_item
from tools.deps import current
from tools.ledger import Attribution, LedgerWrite, insert_once

HISTORY_DAYS: Final = 400
PREVIEW_CACHE_SIZE: Final = 64
"""How many stores' (or sku selections') preview forecasts are kept."""
"""Days of sales history read per item: a year of weekly/yearly lags plus a margin."""

PLANNING_TOOLS: Final[dict[str, tuple[str, ...]]] = {
    "demand_analyst": ("sales_history", "forecast_demand", "describe_demand"),
    "inventory_planner": ("item_facts", "plan_item", "marginal_order_values"),
    "marketing_planner": ("item_facts", "sales_history", "estimate_elasticity", "choose_discount",
                          "measurement_design"),
}  # fmt: skip
"""Planning specialist -> the tools (functions over the data and the models) it works with."""


@dataclass(frozen=True)
class StoreFacts:
    store_id: int
    name: str
    city: str
    region: str


@dataclass(frozen=True)
class ItemFacts:
    """One sku in one store: catalog, stock, lead time and the pricing rule in force."""

    sku: int
    name: str
    category: str
    importance: str
    unit_cost: float
    unit_price: float
    on_hand: int
    on_order: int
    lead_time_days: int
    rule_id: int | None
    rule_type: str | None
    min_margin: float
    max_discount: float
    history_days: int
    last_sale_on: date | None


@dataclass(frozen=True)
class Forecast:
    """Daily P50/P90 for one sku from the plan's first day; ``source`` model | fallback, with why."""

    sku: int
    p50: list[float]
    p90: list[float]
    source: str
    model_version: str | None
    note: str


async def get_store(store_id: int) -> StoreFacts | None:
    async with current().pool.connection() as conn:
        cur = await conn.execute("SELECT store_id, name, city, region FROM stores WHERE store_id = %s", (store_id,))
        row = await cur.fetchone()
    return StoreFacts(**row) if row else None


_ITEMS_SQL: Final = """
SELECT p.sku, p.name, p.category, p.importance, p.unit_cost, p.unit_price,
       i.on_hand, i.on_order, i.lead_time_days,
       r.rule_id, r.rule_type, r.min_margin, r.max_discount,
       h.history_days, h.last_sale_on
FROM products p
JOIN inventory i ON i.sku = p.sku AND i.store_id = %(store)s
LEFT JOIN LATERAL (
    SELECT rule_id, rule_type, min_margin, max_discount FROM pricing_rules pr
    WHERE pr.active AND pr.valid_from <= %(on)s AND (pr.valid_to IS NULL OR pr.valid_to >= %(on)s)
      AND ((pr.scope = 'sku' AND pr.sku = p.sku) OR (pr.scope = 'category' AND pr.category = p.category))
    ORDER BY (pr.scope = 'sku') DESC, pr.valid_from DESC, pr.rule_id
    LIMIT 1
) r ON true
LEFT JOIN LATERAL (
    SELECT count(*)::int AS history_days, max(date) AS last_sale_on FROM sales_daily s
    WHERE s.store_id = %(store)s AND s.sku = p.sku
) h ON true
WHERE p.sku = ANY(%(skus)s)
"""


async def get_items(store_id: int, skus: list[int], on: date) -> dict[int, ItemFacts]:
    """The skus stocked by the store (a sku it does not stock is absent), with the pricing rule valid on ``on``."""
    async with current().pool.connection() as conn:
        cur = await conn.execute(_ITEMS_SQL, {"store": store_id, "skus": skus, "on": on})
        rows = await cur.fetchall()
    out = {}
    for r in rows:
        out[int(r["sku"])] = ItemFacts(
            sku=int(r["sku"]), name=r["name"], category=r["category"], importance=r["importance"],
            unit_cost=float(r["unit_cost"]), unit_price=float(r["unit_price"]), on_hand=int(r["on_hand"]),
            on_order=int(r["on_order"]), lead_time_days=int(r["lead_time_days"]), rule_id=r["rule_id"],
            rule_type=r["rule_type"], min_margin=float(r["min_margin"] if r["min_margin"] is not None else 0.0),
            max_discount=float(r["max_discount"] if r["max_discount"] is not None else 0.0),
            history_days=int(r["history_days"] or 0), last_sale_on=r["last_sale_on"],
        )  # fmt: skip
    return out


async def plan_start(store_id: int) -> date:
    """The plan's first day: the day after the store's latest recorded sales (today when it has none)."""
    async with current().pool.connection() as conn:
        cur = await conn.execute("SELECT max(date) AS last FROM sales_daily WHERE store_id = %s", (store_id,))
        row = await cur.fetchone()
    last = row["last"] if row else None
    return (last + timedelta(days=1)) if last is not None else date.today()


_HISTORY = "FROM sales_daily WHERE store_id = %s AND sku = ANY(%s) AND date >= %s AND date < %s"
"""The rows of a history: :func:`sales_history` reads them, :func:`history_digest` digests them."""


async def _history_rows(select: str, store_id: int, skus: list[int], until: date, days: int) -> list[Any]:
    async with current().pool.connection() as conn:
        cur = await conn.execute(select, (store_id, skus, until - timedelta(days=days), until))
        return list(await cur.fetchall())


async def sales_history(store_id: int, skus: list[int], until: date, days: int = HISTORY_DAYS) -> pd.DataFrame:
    """``date, store, item, sales, discount`` for the skus over the ``days`` before ``until`` (exclusive)."""
    rows = await _history_rows(f"SELECT date, store_id AS store, sku AS item, units AS sales, discount {_HISTORY} "
                               "ORDER BY sku, date", store_id, skus, until, days)  # fmt: skip
    frame = pd.DataFrame.from_records(rows, columns=["date", "store", "item", "sales", "discount"])
    frame["date"] = pd.to_datetime(frame["date"])
    frame["sales"] = frame["sales"].astype(float)
    frame["discount"] = frame["discount"].astype(float)
    return frame


async def history_digest(store_id: int, skus: list[int], until: date, days: int = HISTORY_DAYS) -> tuple[int, int]:
    """The row count and an order-free digest (the sum of each row's 64-bit text hash) of what :func:`sales_history`
    would read: equal digests, equal histories (up to a hash collision). Computed by PostgreSQL, nothing fetched."""
    (row,) = await _history_rows(
        "SELECT count(*) AS n, coalesce(sum(hashtextextended(concat_ws(' ', sku, date, units, discount), 0)), 0) "
        f"AS digest {_HISTORY}", store_id, skus, until, days)  # fmt: skip
    return int(row["n"]), int(row["digest"])


async def planned_discounts(store_id: int, skus: list[int], start: date, days: int) -> pd.DataFrame | None:
    """The promotions on record (seeded or planned) for the ``days`` from ``start``, as daily ``date, store, item,
    discount`` rows (the deepest discount where two overlap), for the forecast; None when there are none."""
    async with current().pool.connection() as conn:
        cur = await conn.execute(
            "SELECT sku, discount, starts_on, ends_on FROM promotions WHERE store_id = %s AND sku = ANY(%s) "
            "AND ends_on >= %s AND starts_on < %s",
            (store_id, skus, start, start + timedelta(days=days)),
        )
        rows = await cur.fetchall()
    deepest: dict[tuple[int, date], float] = {}
    for row in rows:
        first, last = max(row["starts_on"], start), min(row["ends_on"], start + timedelta(days=days - 1))
        for offset in range((last - first).days + 1):
            key = (int(row["sku"]), first + timedelta(days=offset))
            deepest[key] = max(deepest.get(key, 0.0), float(row["discount"]))
    if not deepest:
        return None
    return pd.DataFrame([{"date": pd.Timestamp(day), "store": store_id, "item": sku, "discount": value}
                         for (sku, day), value in sorted(deepest.items())])  # fmt: skip


def _fallback(sku: int, sales: np.ndarray, days: int, why: str) -> Forecast:
    """A flat forecast from the recent mean (P90 from the spread, at least 1.5x the mean for few points)."""
    recent = sales[-28:]
    mean = float(recent.mean()) if len(recent) else 0.0
    spread = float(recent.std(ddof=1)) if len(recent) > 1 else mean
    p90 = max(mean + 1.2816 * spread, 1.5 * mean)
    return Forecast(sku, [round(mean, 3)] * days, [round(p90, 3)] * days, "fallback", None, why)


def forecast_items(history: pd.DataFrame, skus: list[int], days: int, model: Any | None, min_history: int,
                   discounts: pd.DataFrame | None = None) -> dict[int, Forecast]:  # fmt: skip
    """P50/P90 for ``days`` days after the history, per sku: the demand model for items with at least
    ``min_history`` days, told the promotions planned for those days (``discounts``), else (or with no model,
    or beyond the model's horizon) the stated fallback."""
    out: dict[int, Forecast] = {}
    modelled: list[int] = []
    for sku in skus:
        sales = history.loc[history["item"] == sku, "sales"].to_numpy(dtype=float)
        if model is None:
            out[sku] = _fallback(sku, sales, days, "no demand model is loaded: flat forecast from the last 28 days")
        elif len(sales) < min_history:
            out[sku] = _fallback(sku, sales, days, f"only {len(sales)} days of history (< {min_history}): flat "
                                 "forecast from the recent mean, lower confidence")  # fmt: skip
        elif days > model.horizon:
            out[sku] = _fallback(sku, sales, days, f"{days} days is beyond the model's horizon of {model.horizon}")
        else:
            modelled.append(sku)
    if modelled and model is not None:
        planned = discounts[discounts["item"].isin(modelled)] if discounts is not None else None
        frame = model.forecast(history[history["item"].isin(modelled)], days,
                               discounts=planned if planned is not None and len(planned) else None)  # fmt: skip
        for sku, rows in frame.groupby("item", sort=False):
            rows = rows.sort_values("date")
            out[int(sku)] = Forecast(int(sku), [round(float(v), 3) for v in rows["p50"]],
                                     [round(float(v), 3) for v in rows["p90"]], "model", str(model.model_version),
                                     "demand model (LightGBM quantiles)")  # fmt: skip
    return out


WEEKDAYS: Final = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")


def describe_demand(history: pd.DataFrame, sku: int) -> dict[str, Any]:
    """Mean daily sales (all history, last 28 days), trend (last 28 days against the 28 before) and weekly
    pattern (busiest vs quietest weekday), in words and numbers, from one sku's history."""
    rows = history[history["item"] == sku]
    sales, dates = rows["sales"].to_numpy(dtype=float), pd.to_datetime(rows["date"])
    out: dict[str, Any] = {"history_days": len(sales),
                           "mean_daily": round(float(sales.mean()), 2) if len(sales) else 0.0,
                           "recent_daily": round(float(sales[-28:].mean()), 2) if len(sales) else 0.0}  # fmt: skip
    if len(sales) >= 56 and sales[-56:-28].mean() > 0:
        change = sales[-28:].mean() / sales[-56:-28].mean() - 1
        word = "rising" if change > 0.05 else "falling" if change < -0.05 else "flat"
        out["trend_pct"] = round(100 * change, 1)
        out["trend"] = f"{word}: the last 4 weeks sold {abs(100 * change):.0f} % {'more' if change >= 0 else 'less'} " \
                       "per day than the 4 weeks before"  # fmt: skip
    else:
        out["trend"] = "not enough history (56 days) to read a trend"
    if len(sales) >= 28:
        by_day = pd.Series(sales[-84:]).groupby(dates.dt.day_of_week.to_numpy()[-84:]).mean()
        if by_day.min() > 0:
            ratio = float(by_day.max() / by_day.min())
            out["weekly_ratio"] = round(ratio, 2)
            out["seasonality"] = (f"busiest on {WEEKDAYS[int(by_day.idxmax())]}, {ratio:.1f}x the quietest day "
                                  f"({WEEKDAYS[int(by_day.idxmin())]})" if ratio >= 1.15 else
                                  "no marked weekly pattern")  # fmt: skip
        else:
            out["seasonality"] = "some weekdays sell nothing: intermittent demand"
    else:
        out["seasonality"] = "not enough history (28 days) to read a weekly pattern"
    return out


# -- the plans index -----------------------------------------------------------------------------------------


async def record_plan(plan_id: str, request: dict[str, Any], created_by: str) -> None:
    """Index a new plan (status ``created``); a re-run of the same thread changes nothing."""
    async with current().pool.connection() as conn:
        await conn.execute(
            "INSERT INTO plans (plan_id, store_id, horizon_days, request, created_by) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (plan_id) DO NOTHING",
            (plan_id, request["store_id"], request["horizon_days"], Jsonb(request), created_by),
        )


async def set_plan_status(plan_id: str, status: str, **fields: Any) -> None:
    """Set a plan's status and any of total_cost, line_count, confidence, decided_by, decision_comment."""
    allowed = {"total_cost", "line_count", "confidence", "decided_by", "decision_comment"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"set_plan_status: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    decided = "decided_by" in fields
    async with current().pool.connection() as conn:
        await conn.execute(
            "UPDATE plans SET status = %(status)s, updated_at = now(), "
            "total_cost = coalesce(%(total_cost)s, total_cost), line_count = coalesce(%(line_count)s, line_count), "
            "confidence = coalesce(%(confidence)s, confidence), decided_by = coalesce(%(decided_by)s, decided_by), "
            "decision_comment = coalesce(%(decision_comment)s, decision_comment), "
            "decided_at = CASE WHEN %(decided)s THEN coalesce(decided_at, now()) ELSE decided_at END "
            "WHERE plan_id = %(plan_id)s",
            {"status": status, "plan_id": plan_id, "decided": decided,
             **{k: fields.get(k) for k in allowed}},
        )  # fmt: skip


async def plan_rows(plan_id: str | None = None, store_id: int | None = None, limit: int = 5) -> list[dict[str, Any]]:
    """Plans from the index, newest first: one by id, or the latest of a store (or of all stores)."""
    async with current().pool.connection() as conn:
        cur = await conn.execute(
            "SELECT plan_id, store_id, horizon_days, status, total_cost::float8 AS total_cost, line_count, "
            "confidence::float8 AS confidence, created_by, decided_by, decision_comment, created_at, updated_at "
            "FROM plans WHERE (%(plan)s::text IS NULL OR plan_id = %(plan)s) "
            "AND (%(store)s::int IS NULL OR store_id = %(store)s) ORDER BY created_at DESC, plan_id LIMIT %(limit)s",
            {"plan": plan_id, "store": store_id, "limit": limit},
        )
        return [dict(r) for r in await cur.fetchall()]


async def stocked_items(store_id: int, skus: list[int] | None = None) -> list[dict[str, Any]]:
    """The store's stocked items (``item_id``, ``current_stock`` = on hand, ``lead_time_days``), by sku."""
    async with current().pool.connection() as conn:
        cur = await conn.execute(
            "SELECT sku AS item_id, on_hand AS current_stock, lead_time_days FROM inventory WHERE store_id = %s "
            "AND (%s::int[] IS NULL OR sku = ANY(%s)) ORDER BY sku", (store_id, skus, skus),
        )
        return [dict(r) for r in await cur.fetchall()]


async def store_catalog() -> list[dict[str, Any]]:
    """Every store with the items it stocks (what a plan request may name): ``store_id, name, city, region,
    items: [{item_id, name, category, on_hand, on_order, lead_time_days}]``, by store and sku."""
    async with current().pool.connection() as conn:
        cur = await conn.execute(
            "SELECT s.store_id, s.name, s.city, s.region, i.sku, p.name AS item_name, p.category, i.on_hand, "
            "i.on_order, i.lead_time_days FROM stores s JOIN inventory i USING (store_id) JOIN products p "
            "ON p.sku = i.sku ORDER BY s.store_id, i.sku"
        )
        rows = await cur.fetchall()
    stores: dict[int, dict[str, Any]] = {}
    for r in rows:
        key = int(r["store_id"])
        store = stores.setdefault(key, {"store_id": key, "name": r["name"], "city": r["city"], "region": r["region"],
                                        "items": []})  # fmt: skip
        store["items"].append({"item_id": int(r["sku"]), "name": r["item_name"], "category": r["category"],
                               "on_hand": int(r["on_hand"]), "on_order": int(r["on_order"]),
                               "lead_time_days": int(r["lead_time_days"])})  # fmt: skip
    return list(stores.values())


def project_stock(start: float, demand: list[float], arrives_at: int | None, quantity: float) -> list[float]:
    """End-of-day stock over the forecast's days: ``start`` less each day's ``demand``, floored at 0 (a sale the
    stock cannot meet is lost, as the planner assumes), with ``quantity`` arriving before the sales of day
    ``arrives_at`` (0-based; None, or past the last day: nothing arrives)."""
    level, out = float(start), []
    for day, units in enumerate(demand):
        if day == arrives_at:
            level += quantity
        level = max(0.0, level - float(units))
        out.append(round(level, 1))
    return out


@dataclass
class _Preview:
    """One cached preview: its forecasts, and the plans made from them, by the item's facts and the settings."""

    forecasts: dict[int, Forecast]
    plans: dict[tuple[Any, ...], Any]


_previews: OrderedDict[tuple[Any, ...], _Preview] = OrderedDict()  # least recently used first


async def reorder_preview(store_id: int, review_days: int = 7, skus: list[int] | None = None) -> list[dict[str, Any]]:
    """What the inventory planner would order now for the store's items (all, or ``skus``), each over its own
    lead time + ``review_days``, from the demand model (fallbacks as in a plan): a read-only preview, no plan.
    Items are returned riskiest first (stock-out risk without an order)."""
    deps = current()
    starts = await plan_start(store_id)
    stocked = [int(r["item_id"]) for r in await stocked_items(store_id, skus)]
    facts = await get_items(store_id, stocked, starts)
    if not facts:
        return []
    cover = max(f.lead_time_days for f in facts.values()) + review_days
    model, min_history = deps.models.get("demand"), deps.policy.planning.min_history_days
    promotions = await planned_discounts(store_id, list(facts), starts, cover)
    version = model.model_version if model is not None else None
    key = (store_id, tuple(sorted(facts)), starts, cover, version, min_history,
           await history_digest(store_id, list(facts), starts),
           None if promotions is None else tuple(promotions.itertuples(index=False)))  # fmt: skip
    cached = _previews.get(key)
    if cached is None:
        history = await sales_history(store_id, list(facts), starts)
        cached = _previews[key] = _Preview(await asyncio.to_thread(
            forecast_items, history, list(facts), cover, model, min_history, promotions), {})  # fmt: skip
        while len(_previews) > PREVIEW_CACHE_SIZE:
            _previews.popitem(last=False)
    else:
        _previews.move_to_end(key)
    costs = PlanningCosts(service_level=deps.policy.planning.service_level_pct / 100)
    out: list[dict[str, Any]] = []
    for sku, item in facts.items():
        fc = cached.forecasts[sku]
        plan = cached.plans.get((item, review_days, costs, min_history))
        if plan is None:  # stock, lead time, costs: the plan's own inputs
            if len(cached.plans) >= PREVIEW_CACHE_SIZE * len(facts):
                cached.plans.clear()
            plan = cached.plans[item, review_days, costs, min_history] = plan_item(ItemPlanInput(
                sku=sku, on_hand=item.on_hand, on_order=item.on_order, p50=fc.p50, p90=fc.p90,
                lead_time_days=item.lead_time_days, review_days=review_days, unit_cost=item.unit_cost,
                unit_price=item.unit_price, history_days=item.history_days), costs,
                min_history_days=min_history)  # fmt: skip
        out.append({"sku": sku, "name": item.name, "on_hand": item.on_hand, "on_order": item.on_order,
                    "lead_time_days": item.lead_time_days, "order_qty": plan.order_qty,
                    "cost": round(plan.order_qty * item.unit_cost, 2),
                    "stockout_risk": plan.stockout_risk_without_order, "forecast_source": fc.source,
                    "rationale": plan.rationale})  # fmt: skip
    out.sort(key=lambda r: (-r["stockout_risk"], r["sku"]))
    return out


# -- the planning ledgers ------------------------------------------------------------------------------------


async def place_purchase_order(
    store_id: int, sku: int, quantity: int, unit_cost: float, expected_on: date, attribution: Attribution
) -> LedgerWrite:
    """One purchase order (once per idempotency key); its quantity joins the inventory's ``on_order``."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise ValueError(f"quantity: a purchase order needs a whole number of units > 0, got {quantity!r}")
    if not math.isfinite(unit_cost) or unit_cost < 0:
        raise ValueError(f"unit_cost: must be a finite number >= 0, got {unit_cost!r}")

    async def on_order(conn: Any, row: dict[str, Any]) -> None:
        await conn.execute("UPDATE inventory SET on_order = on_order + %s, updated_at = now() "
                           "WHERE store_id = %s AND sku = %s", (row["quantity"], store_id, sku))  # fmt: skip

    values = {"store_id": store_id, "sku": sku, "quantity": quantity, "unit_cost": round(unit_cost, 2),
              "expected_on": expected_on}  # fmt: skip
    return await insert_once("purchase_orders", values, attribution, after_insert=on_order)


async def start_promotion(
    store_id: int, sku: int, discount: float, starts_on: date, ends_on: date, attribution: Attribution
) -> LedgerWrite:
    """One planned promotion (once per idempotency key)."""
    if not 0 < discount < 1:
        raise ValueError(f"discount: must be in (0, 1), got {discount!r}")
    if ends_on < starts_on:
        raise ValueError(f"ends_on: {ends_on} is before starts_on {starts_on}")
    values = {"store_id": store_id, "sku": sku, "discount": round(discount, 3), "starts_on": starts_on,
              "ends_on": ends_on, "source": "plan"}  # fmt: skip
    return await insert_once("promotions", values, attribution)
