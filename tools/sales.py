"""Sales over periods, from ``sales_daily``: totals, comparisons, top sellers and category shares.

Every function answers a :class:`SalesTable`: the rows, their columns and units, the period, and the scope (store,
items, category) it covers, so a chat answer can state its numbers and a UI can draw the table. Revenue is units x
the day's price (the price column already carries the day's discount). Periods are inclusive dates; the data's
"today" is :func:`as_of` (the latest day with sales), not the machine's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, Literal

from psycopg import sql

from tools.deps import current

Measure = Literal["units", "revenue"]
MAX_ROWS: Final = 100


@dataclass(frozen=True)
class SalesTable:
    """Rows with named columns; ``period`` is ``[start, end]`` ISO dates; ``scope`` says what was included."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    units: dict[str, str]
    period: list[str]
    scope: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scope:
    """Which sales count: a store (None = all), skus (None = all), a category (None = all)."""

    store_id: int | None = None
    skus: list[int] | None = None
    category: str | None = None

    def params(self) -> dict[str, Any]:
        return {"store": self.store_id, "skus": self.skus, "category": self.category}

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in (("store_id", self.store_id), ("skus", self.skus), ("category", self.category))
                if v is not None}  # fmt: skip


_FROM: Final = sql.SQL("""
FROM sales_daily s JOIN products p ON p.sku = s.sku
WHERE s.date BETWEEN %(start)s AND %(end)s
AND (%(store)s::int IS NULL OR s.store_id = %(store)s)
AND (%(skus)s::int[] IS NULL OR s.sku = ANY(%(skus)s))
AND (%(category)s::text IS NULL OR p.category = %(category)s)
""")


async def as_of() -> date:
    """The data's today: the latest day with recorded sales."""
    async with current().pool.connection() as conn:
        cur = await conn.execute("SELECT max(date) AS last FROM sales_daily")
        row = await cur.fetchone()
    return row["last"] if row and row["last"] else date.today()


async def _fetch(select: str, rest: str, params: dict[str, Any], order: str | None = None) -> list[dict[str, Any]]:
    """``SELECT <select> FROM sales ... WHERE <scope and period> <rest>`` (``rest`` may name ``{order}``)."""
    query = sql.SQL("SELECT ") + sql.SQL(select) + _FROM + sql.SQL(rest).format(
        order=sql.Identifier(order or "units"))  # fmt: skip
    async with current().pool.connection() as conn:
        cur = await conn.execute(query, params)
        return list(await cur.fetchall())


def _money(value: Any) -> float:
    return round(float(value or 0), 2)


async def totals(scope: Scope, start: date, end: date) -> dict[str, Any]:
    """Units, revenue, days with sales and items sold in the period."""
    rows = await _fetch(
        "coalesce(sum(s.units), 0) AS units, coalesce(sum(s.units * s.price), 0) AS revenue, "
        "count(DISTINCT s.date) AS days, count(DISTINCT s.sku) AS items", "",
        scope.params() | {"start": start, "end": end},
    )
    row = rows[0]
    return {"units": int(row["units"]), "revenue": _money(row["revenue"]), "days": int(row["days"]),
            "items": int(row["items"])}  # fmt: skip


def _period(start: date, end: date) -> list[str]:
    return [start.isoformat(), end.isoformat()]


async def summary(scope: Scope, start: date, end: date) -> SalesTable:
    """Per day of the period: units and revenue."""
    rows = await _fetch("s.date, sum(s.units) AS units, sum(s.units * s.price) AS revenue",
                        "GROUP BY s.date ORDER BY s.date", scope.params() | {"start": start, "end": end})
    return SalesTable("sales per day", ["date", "units", "revenue"],
                      [[r["date"].isoformat(), int(r["units"]), _money(r["revenue"])] for r in rows][:MAX_ROWS],
                      {"units": "units", "revenue": "USD"}, _period(start, end), scope.describe())  # fmt: skip


async def compare(scope: Scope, period: tuple[date, date], previous: tuple[date, date]) -> SalesTable:
    """Units and revenue of two periods side by side, with the change (absolute and percent)."""
    now, before = await totals(scope, *period), await totals(scope, *previous)
    rows = []
    for measure in ("units", "revenue"):
        change = now[measure] - before[measure]
        pct = round(100 * change / before[measure], 1) if before[measure] else None
        rows.append([measure, before[measure], now[measure], round(change, 2), pct])
    return SalesTable("sales compared", ["measure", "previous", "current", "change", "change_pct"], rows,
                      {"units": "units", "revenue": "USD", "change_pct": "%"}, _period(*period),
                      scope.describe() | {"previous_period": _period(*previous)})  # fmt: skip


async def top_sellers(scope: Scope, start: date, end: date, *, by: Measure = "units", limit: int = 5) -> SalesTable:
    """The items that sold most in the period (by units or revenue)."""
    order = "revenue" if by == "revenue" else "units"
    rows = await _fetch(
        "s.sku, p.name, p.category, sum(s.units) AS units, sum(s.units * s.price) AS revenue",
        "GROUP BY s.sku, p.name, p.category ORDER BY {order} DESC, s.sku LIMIT %(limit)s",
        scope.params() | {"start": start, "end": end, "limit": max(1, min(limit, MAX_ROWS))}, order,
    )
    return SalesTable(f"top sellers by {order}", ["sku", "name", "category", "units", "revenue"],
                      [[int(r["sku"]), r["name"], r["category"], int(r["units"]), _money(r["revenue"])]
                       for r in rows], {"units": "units", "revenue": "USD"}, _period(start, end),
                      scope.describe())  # fmt: skip


async def category_shares(scope: Scope, start: date, end: date) -> SalesTable:
    """Each category's units and revenue in the period and its share of the revenue."""
    rows = await _fetch("p.category, sum(s.units) AS units, sum(s.units * s.price) AS revenue",
                        "GROUP BY p.category ORDER BY revenue DESC, p.category",
                        scope.params() | {"start": start, "end": end})
    total = sum(float(r["revenue"]) for r in rows) or 1.0
    return SalesTable("category shares", ["category", "units", "revenue", "revenue_share_pct"],
                      [[r["category"], int(r["units"]), _money(r["revenue"]),
                        round(100 * float(r["revenue"]) / total, 1)] for r in rows],
                      {"units": "units", "revenue": "USD", "revenue_share_pct": "%"}, _period(start, end),
                      scope.describe())  # fmt: skip
