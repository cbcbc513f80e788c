"""The sales specialist: units and revenue over a period, a period against another, top sellers, category shares.

It answers ``sales.summary``, ``sales.compare``, ``sales.top_sellers`` and ``sales.category_share`` over
:mod:`tools.sales`. The scope is the question's first store (all stores when none), its products and its first
category; the period is the one asked about, else the 7 days ending on the data's "today"; a comparison is against
the period asked about, else the period of the same length just before. A summary or comparison naming several
stores is answered per store, one row each; the other intents use the first store. Every number in the text is
formatted from a :mod:`tools.sales` result, and the text always says which dates it covers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any

from graphs.chat.specialists.base import (
    Answer,
    Ask,
    Handler,
    Table,
    call,
    count,
    dispatch,
    money,
    names,
    pct,
    table,
)
from ml.nlu import Entities, Period, StoreRef
from ml.nlu.periods import previous_period
from tools import sales as sales_tools
from tools.sales import Measure, SalesTable, Scope

DEFAULT_DAYS = 7
"""Length of the default period (days ending on the data's "today")."""
DEFAULT_TOP = 5
"""Top sellers listed when the question names no number."""

_REVENUE_WORDS = re.compile(r"revenue|dollar|\$|turnover|takings|money|earn|income|sales value|by value", re.I)
_ROLLING = re.compile(r"^(?:the\s+)?((?:last|past|previous)\s+\d+\s+\w+)$", re.I)
_BARE_LABEL = re.compile(r"^(?:last|this|past|previous|yesterday|today|since|on|in|during|from|between|the)\b", re.I)
_BEFORE_LABEL = {"day": "the day before", "week": "the week before", "month": "the month before",
                 "quarter": "the quarter before", "year": "the year before"}  # fmt: skip


# -- the question's scope and periods -----------------------------------------------------------------------------


def _scope(entities: Entities, store: StoreRef | None) -> Scope:
    category = entities.categories[0] if entities.categories else None
    return Scope(store_id=store.store_id if store else None, skus=list(entities.skus) or None, category=category)


def period_of(ask: Ask) -> Period:
    """The period asked about, else the last :data:`DEFAULT_DAYS` days ending on the data's "today"."""
    if ask.entities.period is not None:
        return ask.entities.period
    start = ask.as_of - dt.timedelta(days=DEFAULT_DAYS - 1)
    return Period(start, ask.as_of, f"the last {DEFAULT_DAYS} days", "days")


def compare_period_of(ask: Ask, period: Period) -> Period:
    """The period to compare with: the one asked about, else the period of the same kind and length just before."""
    if ask.entities.compare_period is not None:
        return ask.entities.compare_period
    label = _BEFORE_LABEL.get(period.grain) or (
        "the day before" if period.days == 1 else f"the previous {period.days} days")  # fmt: skip
    return previous_period(period, label)


def when(period: Period) -> str:
    """``last week (2026-11-16 to 2026-11-22)``, ``in the last 7 days (...)``: the period as the text says it."""
    label = period.label.strip()
    rolling = _ROLLING.match(label)
    if rolling:
        label = f"in the {rolling.group(1)}"
    elif not _BARE_LABEL.match(label):
        label = f"in {label}"
    dates = period.start.isoformat() if period.start == period.end else f"{period.start} to {period.end}"
    return f"{label} ({dates})"


def _dates(period: Period) -> tuple[dt.date, dt.date]:
    return period.start, period.end


def _place(store: StoreRef | None) -> str:
    return f"store {store.store_id}" if store else "all stores"


def _what(entities: Entities) -> str:
    """``units``, ``units of X``, ``grocery units``: what was counted."""
    what = f"{entities.categories[0]} units" if entities.categories else "units"
    if entities.products:
        what += f" of {names([p.name for p in entities.products])}"
    return what


def _focus(stores: Sequence[StoreRef | None], skus: Sequence[int]) -> dict[str, Any]:
    return {"store_ids": [s.store_id for s in stores if s is not None], "skus": list(skus)}


def _as_table(result: SalesTable, title: str, period: Period) -> Table:
    return table(title, result.columns, result.rows, result.units, period)


# -- wording of numbers -------------------------------------------------------------------------------------------


def _many(n: int, word: str) -> str:
    """``1 item``, ``2 items``."""
    return f"{count(n)} {word}{'' if n == 1 else 's'}"


def _signed_pct(value: float) -> str:
    return f"+{pct(value)}" if value >= 0 else pct(value)


def _change(change: float, change_pct: float | None, fmt: Callable[[float], str], unit: str = "") -> str:
    """``up 56 units (+4.8 %)``, ``down $12.00 (-3.1 %)``, ``unchanged``."""
    if change == 0:
        return "unchanged"
    direction = "up" if change > 0 else "down"
    amount = f"{fmt(abs(change))}{unit}"
    share = f"({_signed_pct(change_pct)})" if change_pct is not None else "(nothing sold before to compare with)"
    return f"{direction} {amount} {share}"


# -- sales.summary ------------------------------------------------------------------------------------------------


async def _summary_one(ask: Ask, store: StoreRef | None, period: Period, tools: list[str]) -> Answer:
    scope = _scope(ask.entities, store)
    totals = await call(tools, "sales_summary", sales_tools.totals(scope, *_dates(period)))
    per_day = await call(tools, "sales_summary", sales_tools.summary(scope, *_dates(period)))
    subject = "Store " + str(store.store_id) if store else "All stores together"
    if totals["units"] == 0:
        text = f"{subject} recorded no sales of {_what(ask.entities)} {when(period)}."
    else:
        sold = f"{count(totals['units'])} {_what(ask.entities)} ({money(totals['revenue'])})"
        spread = f"{_many(totals['items'], 'item')}, {_many(totals['days'], 'day')} with sales"
        text = f"{subject} sold {sold} {when(period)}: {spread}."
    title = f"sales per day at {_place(store)}"
    return Answer(text, table=_as_table(per_day, title, period), tools=list(tools),
                  focus=_focus([store], ask.entities.skus))  # fmt: skip


async def _summary_many(ask: Ask, stores: Sequence[StoreRef], period: Period, tools: list[str]) -> Answer:
    rows, parts = [], []
    for store in stores:
        totals = await call(tools, "sales_summary", sales_tools.totals(_scope(ask.entities, store), *_dates(period)))
        rows.append([store.store_id, store.name, totals["units"], totals["revenue"]])
        parts.append(f"store {store.store_id} sold {count(totals['units'])} {_what(ask.entities)} "
                     f"({money(totals['revenue'])})")  # fmt: skip
    text = f"Sales {when(period)}: {'; '.join(parts)}."
    result = table("sales per store", ["store_id", "store", "units", "revenue"], rows,
                   {"units": "units", "revenue": "USD"}, period)  # fmt: skip
    return Answer(text, table=result, tools=list(tools), focus=_focus(stores, ask.entities.skus))


async def _summary(ask: Ask, tools: list[str]) -> Answer:
    period = period_of(ask)
    stores = ask.entities.stores
    if len(stores) > 1:
        return await _summary_many(ask, stores, period, tools)
    return await _summary_one(ask, stores[0] if stores else None, period, tools)


# -- sales.compare ------------------------------------------------------------------------------------------------


def _measures(result: SalesTable) -> dict[str, list[Any]]:
    """The compare table's rows by measure: ``[previous, current, change, change_pct]``."""
    return {str(row[0]): list(row[1:]) for row in result.rows}


def _compare_sentence(subject: str, what: str, m: dict[str, list[Any]], period: Period, before: Period) -> str:
    units, revenue = m["units"], m["revenue"]
    return (f"{subject} sold {count(units[1])} {what} ({money(revenue[1])}) {when(period)}, "
            f"{_change(units[2], units[3], count, ' units')} and {_change(revenue[2], revenue[3], money)} in revenue "
            f"compared with {when(before)}: {count(units[0])} units ({money(revenue[0])})")  # fmt: skip


async def _compare_one(ask: Ask, store: StoreRef | None, period: Period, before: Period,
                       tools: list[str]) -> Answer:  # fmt: skip
    result = await call(tools, "sales_compare", sales_tools.compare(
        _scope(ask.entities, store), _dates(period), _dates(before)))  # fmt: skip
    subject = "Store " + str(store.store_id) if store else "All stores together"
    text = _compare_sentence(subject, _what(ask.entities), _measures(result), period, before) + "."
    title = f"sales at {_place(store)}, {period.start} to {period.end} against {before.start} to {before.end}"
    return Answer(text, table=_as_table(result, title, period), tools=list(tools),
                  focus=_focus([store], ask.entities.skus))  # fmt: skip


_COMPARE_COLUMNS = ["store_id", "units_previous", "units", "units_change", "units_change_pct", "revenue_previous",
                    "revenue", "revenue_change", "revenue_change_pct"]  # fmt: skip
_COMPARE_UNITS = {column: "%" if column.endswith("_pct") else "USD" if column.startswith("revenue") else "units"
                  for column in _COMPARE_COLUMNS[1:]}  # fmt: skip


async def _compare_many(ask: Ask, stores: Sequence[StoreRef], period: Period, before: Period,
                        tools: list[str]) -> Answer:  # fmt: skip
    rows, sentences = [], []
    for store in stores:
        result = await call(tools, "sales_compare", sales_tools.compare(
            _scope(ask.entities, store), _dates(period), _dates(before)))  # fmt: skip
        m = _measures(result)
        rows.append([store.store_id, *m["units"], *m["revenue"]])
        sentences.append(_compare_sentence(f"Store {store.store_id}", _what(ask.entities), m, period, before))
    title = f"sales per store, {period.start} to {period.end} against {before.start} to {before.end}"
    return Answer(". ".join(sentences) + ".", table=table(title, _COMPARE_COLUMNS, rows, _COMPARE_UNITS, period),
                  tools=list(tools), focus=_focus(stores, ask.entities.skus))  # fmt: skip


async def _compare(ask: Ask, tools: list[str]) -> Answer:
    period = period_of(ask)
    before = compare_period_of(ask, period)
    stores = ask.entities.stores
    if len(stores) > 1:
        return await _compare_many(ask, stores, period, before, tools)
    return await _compare_one(ask, stores[0] if stores else None, period, before, tools)


# -- sales.top_sellers --------------------------------------------------------------------------------------------


def ranks_by_revenue(text: str) -> bool:
    """Whether the question ranks by revenue (it mentions revenue, dollars, money...) rather than units."""
    return _REVENUE_WORDS.search(text) is not None


def _seller(rank: int, row: Sequence[Any]) -> str:
    sku, name, _category, units, revenue = row
    return f"{rank}. {name} (sku {sku}): {count(units)} units ({money(revenue)})"


async def _top_sellers(ask: Ask, tools: list[str]) -> Answer:
    period, store = period_of(ask), (ask.entities.stores[0] if ask.entities.stores else None)
    by: Measure = "revenue" if ranks_by_revenue(ask.text) else "units"
    limit = ask.entities.limit or DEFAULT_TOP
    result = await call(tools, "top_sellers", sales_tools.top_sellers(
        _scope(ask.entities, store), *_dates(period), by=by, limit=limit))  # fmt: skip
    skus = [int(row[0]) for row in result.rows]
    if not result.rows:
        text = f"Nothing sold at {_place(store)} {when(period)}."
    else:
        listed = "; ".join(_seller(i, row) for i, row in enumerate(result.rows, start=1))
        text = f"Top {count(len(result.rows))} sellers by {by} at {_place(store)} {when(period)}: {listed}."
    return Answer(text, table=_as_table(result, f"top sellers by {by} at {_place(store)}", period),
                  tools=list(tools), focus=_focus([store], skus))  # fmt: skip


# -- sales.category_share -----------------------------------------------------------------------------------------


def _share(row: Sequence[Any]) -> str:
    category, units, revenue, share = row
    return f"{category} {pct(share)} ({money(revenue)}, {count(units)} units)"


def _share_text(category: str | None, rows: Sequence[Sequence[Any]], place: str, period: Period) -> str:
    if not rows:
        return f"Nothing sold at {place} {when(period)}."
    if category is None:
        return f"Share of revenue by category at {place} {when(period)}: {'; '.join(_share(r) for r in rows)}."
    row = next((r for r in rows if r[0] == category), None)
    if row is None:
        return f"{category} had no sales at {place} {when(period)}."
    return (f"{category} made {pct(row[3])} of the revenue at {place} {when(period)}: {money(row[2])} from "
            f"{count(row[1])} units.")  # fmt: skip


async def _category_share(ask: Ask, tools: list[str]) -> Answer:
    period, store = period_of(ask), (ask.entities.stores[0] if ask.entities.stores else None)
    scope = Scope(store_id=store.store_id if store else None)
    result = await call(tools, "category_shares", sales_tools.category_shares(scope, *_dates(period)))
    category = ask.entities.categories[0] if ask.entities.categories else None
    text = _share_text(category, result.rows, _place(store), period)
    return Answer(text, table=_as_table(result, f"category shares at {_place(store)}", period), tools=list(tools),
                  focus=_focus([store], []))  # fmt: skip


# -- entry point --------------------------------------------------------------------------------------------------

_HANDLERS: dict[str, Handler] = {
    "sales.summary": _summary,
    "sales.compare": _compare,
    "sales.top_sellers": _top_sellers,
    "sales.category_share": _category_share,
}


async def answer(ask: Ask) -> Answer:
    """The sales specialist's answer to ``ask`` (one of the ``sales.*`` intents)."""
    return await dispatch("sales", _HANDLERS, ask)
