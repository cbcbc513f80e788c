"""The inventory specialist: stock on hand at stores, and what the planner would reorder now.

``inventory.stock`` reads :func:`tools.inventory.stock` for the question's store, products or category:

* a store and a product: that line ("Store 2 has 37 X on hand (12 on order, 9.3 days of cover)");
* a product only: one row per store that stocks it, with the total;
* a store or a category only: the lines with the fewest days of cover (the question's "top N", else
  :data:`DEFAULT_LIMIT`) and how many lines are flagged for reorder.

``inventory.reorder`` reads :func:`tools.planning.reorder_preview` for one store (it needs one: without it the
answer is a question back) and lists the items the planner would order, riskiest first. It is a preview: nothing
is ordered, and the text says how to start a plan that waits for approval. Every number in the text is formatted
from a tool result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from graphs.chat.specialists.base import (
    Answer,
    Ask,
    Handler,
    call,
    clarify,
    count,
    dispatch,
    money,
    names,
    pct,
    table,
)
from ml.nlu import ProductRef, StoreRef
from tools import planning as planning_tools
from tools.catalog import load_catalog
from tools.inventory import COVER_WINDOW_DAYS
from tools.inventory import stock as stock_tool

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 10
"""Stock lines (or reorder lines) listed when the question names no number."""
REVIEW_DAYS = 7
"""Days past each item's lead time the reorder preview covers."""

_STOCK_COLUMNS = ["store_id", "sku", "product", "on_hand", "on_order", "days_of_cover", "reorder_point", "reorder"]
_STOCK_UNITS = {"on_hand": "units", "on_order": "units", "days_of_cover": "days", "reorder_point": "units"}
_REORDER_COLUMNS = ["sku", "product", "order_qty", "on_hand", "on_order", "lead_time_days", "stockout_risk_pct",
                    "cost", "forecast_source"]  # fmt: skip
_REORDER_UNITS = {"order_qty": "units", "on_hand": "units", "on_order": "units", "lead_time_days": "days",
                  "stockout_risk_pct": "%", "cost": "USD"}  # fmt: skip


# -- wording ------------------------------------------------------------------------------------------------------


def _many(n: int, word: str) -> str:
    """``1 store``, ``2 stores``."""
    return f"{count(n)} {word}{'' if n == 1 else 's'}"


def _days(value: float) -> str:
    return f"{value:,.1f}"


def _cover(line: dict[str, Any]) -> str:
    """``9.3 days of cover`` or why there is none."""
    if line["days_of_cover"] is None:
        return f"no sales in the last {COVER_WINDOW_DAYS} days, so no days of cover"
    return f"{_days(line['days_of_cover'])} days of cover"


def _flag(line: dict[str, Any]) -> str:
    if not line["reorder"]:
        return ""
    return (f" It is flagged for reorder: on hand and on order are at or below its reorder point of "
            f"{_days(line['reorder_point'])} units ({count(line['lead_time_days'])} days of lead time).")  # fmt: skip


def _at_store(line: dict[str, Any]) -> str:
    """``Store 2 has 37 X on hand (12 on order, 9.3 days of cover).``"""
    return (f"Store {line['store_id']} has {count(line['on_hand'])} {line['product_name']} on hand "
            f"({count(line['on_order'])} on order, {_cover(line)}).{_flag(line)}")  # fmt: skip


def _row(line: dict[str, Any]) -> list[Any]:
    return [line["store_id"], line["sku"], line["product_name"], line["on_hand"], line["on_order"],
            line["days_of_cover"], line["reorder_point"], line["reorder"]]  # fmt: skip


def _focus(store_ids: Sequence[int], skus: Sequence[int]) -> dict[str, Any]:
    return {"store_ids": sorted(set(store_ids)), "skus": list(dict.fromkeys(skus))}


# -- inventory.stock ----------------------------------------------------------------------------------------------


def _answer(text: str, title: str, lines: Sequence[dict[str, Any]], tools: list[str],
            extra: Sequence[list[Any]] = ()) -> Answer:  # fmt: skip
    """The answer over stock ``lines`` (its table, and the stores and skus they are about as the focus)."""
    rows = [*map(_row, lines), *extra]
    focus = _focus([line["store_id"] for line in lines], [line["sku"] for line in lines])
    return Answer(text, table=table(title, _STOCK_COLUMNS, rows, _STOCK_UNITS), tools=list(tools), focus=focus)


async def _at_store_for_products(store: StoreRef, products: Sequence[ProductRef], tools: list[str]) -> Answer:
    lines = await call(tools, "stock", stock_tool(store.store_id, [p.sku for p in products]))
    by_sku = {line["sku"]: line for line in lines}
    parts = [_at_store(by_sku[p.sku]) if p.sku in by_sku else f"Store {store.store_id} does not stock {p.name}."
             for p in products]  # fmt: skip
    reply = _answer(" ".join(parts), f"stock at store {store.store_id}", lines, tools)
    return replace(reply, focus=_focus([store.store_id], [p.sku for p in products]))


def _product_total(product: ProductRef, lines: Sequence[dict[str, Any]]) -> tuple[str, list[list[Any]]]:
    """One product across stores: the sentence and the table's total row (none when no store stocks it)."""
    mine = [line for line in lines if line["sku"] == product.sku]
    if not mine:
        return f"No store stocks {product.name} (sku {product.sku}).", []
    on_hand, on_order = sum(line["on_hand"] for line in mine), sum(line["on_order"] for line in mine)
    flagged = sum(1 for line in mine if line["reorder"])
    per_store = "; ".join(f"store {line['store_id']} {count(line['on_hand'])} ({_cover(line)})" for line in mine)
    text = (f"{product.name} (sku {product.sku}): {count(on_hand)} on hand across {_many(len(mine), 'store')} "
            f"({count(on_order)} on order), {count(flagged)} flagged for reorder. By store: {per_store}.")  # fmt: skip
    return text, [["total", product.sku, product.name, on_hand, on_order, None, None, flagged > 0]]


async def _for_products(products: Sequence[ProductRef], tools: list[str]) -> Answer:
    lines = await call(tools, "stock", stock_tool(None, [p.sku for p in products]))
    totals = [_product_total(p, lines) for p in products]
    reply = _answer(" ".join(t for t, _ in totals), "stock by store", lines, tools,
                    [row for _, rows in totals for row in rows])  # fmt: skip
    return replace(reply, focus=_focus(reply.focus["store_ids"], [p.sku for p in products]))


def _lowest_cover(lines: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The lines with the fewest days of cover (lines that sold nothing, so have no cover, last)."""
    ordered = sorted(lines, key=lambda r: (r["days_of_cover"] is None, r["days_of_cover"] or 0.0,
                                           r["store_id"], r["sku"]))  # fmt: skip
    return ordered[:limit]


def _low_line(line: dict[str, Any], with_store: bool) -> str:
    where = f"store {line['store_id']}, " if with_store else ""
    return f"{line['product_name']} (sku {line['sku']}, {where}{count(line['on_hand'])} on hand, {_cover(line)})"


async def _overview(store: StoreRef | None, category: str | None, limit: int, tools: list[str]) -> Answer:
    """A store's or a category's stock: how many lines are flagged for reorder, and the lowest cover first."""
    lines = await call(tools, "stock", stock_tool(store.store_id if store else None, None, category))
    where = f"Store {store.store_id}" if store else "All stores"
    if category is not None:
        where += f", in {category},"
    if not lines:
        reply = Answer(f"{where} have no stock lines." if store is None else f"{where} has no stock lines.",
                       tools=list(tools))  # fmt: skip
        return replace(reply, focus=_focus([store.store_id] if store else [], []))
    flagged = sum(1 for line in lines if line["reorder"])
    shown = _lowest_cover(lines, limit)
    listed = "; ".join(_low_line(line, with_store=store is None) for line in shown)
    text = (f"{where} {'has' if store else 'have'} {_many(len(lines), 'stock line')}, {count(flagged)} flagged for "
            f"reorder. Lowest days of cover first: {listed}.")  # fmt: skip
    return _answer(text, "lowest days of cover", shown, tools)


async def _stock(ask: Ask, tools: list[str]) -> Answer:
    e = ask.entities
    store = e.stores[0] if e.stores else None
    category = e.categories[0] if e.categories else None
    if store is not None and e.products:
        return await _at_store_for_products(store, e.products, tools)
    if e.products:
        return await _for_products(e.products, tools)
    if store is not None or category is not None:
        return await _overview(store, category, e.limit or DEFAULT_LIMIT, tools)
    return clarify("Which store or product? Name a store (e.g. store 2), a product or sku, or a category.")


# -- inventory.reorder --------------------------------------------------------------------------------------------


def _store_range(store_ids: Sequence[int]) -> str:
    """``1 to 8`` for consecutive ids, else the list."""
    ids = sorted(store_ids)
    if ids and ids == list(range(ids[0], ids[-1] + 1)) and len(ids) > 2:
        return f"{ids[0]} to {ids[-1]}"
    return names([str(i) for i in ids])


async def _which_store() -> Answer:
    """The question back when a reorder preview names no store, listing the stores when the catalog is readable."""
    try:
        catalog = await load_catalog()
    except Exception:  # the question still stands without the list
        log.warning("the catalog could not be read to list the stores", exc_info=True)
        return clarify("Which store? A reorder preview is for one store: name it (e.g. store 2).")
    return clarify(f"Which store? A reorder preview is for one store; stores are "
                   f"{_store_range([s.store_id for s in catalog.stores])}.")  # fmt: skip


def _reorder_row(item: dict[str, Any]) -> list[Any]:
    return [item["sku"], item["name"], item["order_qty"], item["on_hand"], item["on_order"], item["lead_time_days"],
            round(100 * item["stockout_risk"], 1), item["cost"], item["forecast_source"]]  # fmt: skip


def _reorder_line(rank: int, item: dict[str, Any]) -> str:
    return (f"{rank}. {item['name']} (sku {item['sku']}): order {count(item['order_qty'])} "
            f"({count(item['on_hand'])} on hand, {count(item['on_order'])} on order, stock-out risk without an order "
            f"{pct(100 * item['stockout_risk'])}, cost {money(item['cost'])})")  # fmt: skip


def _reorder_text(store_id: int, preview: Sequence[dict[str, Any]], to_order: Sequence[dict[str, Any]],
                  limit: int) -> str:  # fmt: skip
    horizon = f"each item's lead time + {count(REVIEW_DAYS)} days"
    if not to_order:
        return (f"Reorder preview for store {store_id}: none of its {_many(len(preview), 'item')} needs an order "
                f"to cover {horizon}.")  # fmt: skip
    listed = "; ".join(_reorder_line(i, item) for i, item in enumerate(to_order[:limit], start=1))
    more = f" ({count(len(to_order) - limit)} more in the table)" if len(to_order) > limit else ""
    need = "needs" if len(to_order) == 1 else "need"
    return (f"Reorder preview for store {store_id}: {count(len(to_order))} of {_many(len(preview), 'item')} {need} "
            f"an order to cover {horizon}, riskiest first: {listed}{more}. This is a preview only: nothing is "
            f"ordered. Say \"start a plan for store {store_id}\" to make a plan that waits for approval.")  # fmt: skip


async def _reorder(ask: Ask, tools: list[str]) -> Answer:
    e = ask.entities
    if not e.stores:
        return await _which_store()
    store_id = e.stores[0].store_id
    preview = await call(tools, "reorder_preview", planning_tools.reorder_preview(
        store_id, review_days=REVIEW_DAYS, skus=list(e.skus) or None))  # fmt: skip
    to_order = [item for item in preview if item["order_qty"] > 0]
    rows = [_reorder_row(item) for item in to_order]
    result = table(f"reorder preview for store {store_id}", _REORDER_COLUMNS, rows, _REORDER_UNITS)
    return Answer(_reorder_text(store_id, preview, to_order, e.limit or DEFAULT_LIMIT), table=result,
                  tools=list(tools), focus=_focus([store_id], [item["sku"] for item in to_order]))  # fmt: skip


# -- entry point --------------------------------------------------------------------------------------------------

_HANDLERS: dict[str, Handler] = {
    "inventory.stock": _stock,
    "inventory.reorder": _reorder,
}


async def answer(ask: Ask) -> Answer:
    """The inventory specialist's answer to ``ask`` (``inventory.stock`` or ``inventory.reorder``)."""
    return await dispatch("inventory", _HANDLERS, ask)
