"""The sales, inventory and pricing specialists of the chat against SQL on the seeded data.

Questions are understood as the chat understands them (the offline classifier and entity extraction over the
seeded catalog); every number an answer states is checked against a query written here, or against the tool's own
result where the number comes from a model (reorder quantities, discount suggestions). Missing entities give a
question back, unknown ones an ``unknown`` answer, and a failing tool an ``error`` naming it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import psycopg
import pytest

from graphs.chat.specialists import inventory, pricing, sales
from graphs.chat.specialists.base import Answer, Ask, count, money, pct
from ml.nlu import Catalog, IntentClassifier, ProductRef, default_classifier, extract
from server.db import connect
from tools import planning as planning_tools
from tools import pricing as pricing_tools
from tools import sales as sales_tools
from tools.deps import ToolDeps
from tools.inventory import NotFound

# -- fixtures and helpers -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def catalog(deps: ToolDeps, seeded_url: str) -> Catalog:
    """The seeded catalog, with the data's "today" as the tools read it."""
    as_of = await sales_tools.as_of()
    with connect(seeded_url) as conn:
        stores = pd.DataFrame(conn.execute("SELECT store_id, name, city FROM stores ORDER BY store_id").fetchall())
        products = pd.DataFrame(conn.execute("SELECT sku, name, category FROM products ORDER BY sku").fetchall())
    return Catalog.from_frames(stores, products, as_of)


@pytest.fixture(scope="module")
def classifier() -> IntentClassifier:
    return default_classifier()


def understand(text: str, catalog: Catalog, classifier: IntentClassifier, intent: str | None = None) -> Ask:
    """The question as the chat reads it; ``intent`` overrides the classifier's (checked where it matters)."""
    return Ask(text, intent or classifier.predict(text).intent, extract(text, catalog), catalog.as_of)


def one(db: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> dict[str, Any]:
    row = db.execute(query, params).fetchone()
    assert row is not None
    return dict(row)


def totals(db: psycopg.Connection[Any], start: dt.date, end: dt.date, store_id: int | None = None) -> tuple[int, float]:
    row = one(db, "SELECT coalesce(sum(units), 0) AS u, coalesce(sum(units * price), 0) AS r FROM sales_daily "
              "WHERE date BETWEEN %s AND %s AND (%s::int IS NULL OR store_id = %s)",
              (start, end, store_id, store_id))  # fmt: skip
    return int(row["u"]), round(float(row["r"]), 2)


def signed(change: float, before: float) -> str:
    value = round(100 * change / before, 1)
    return f"+{pct(value)}" if value >= 0 else pct(value)


def product_named(db: psycopg.Connection[Any], category: str) -> dict[str, Any]:
    """The first product of a category (the seeded catalog's names are generated)."""
    row = db.execute("SELECT sku, name FROM products WHERE category = %s ORDER BY sku LIMIT 1", (category,)).fetchone()
    assert row is not None
    return dict(row)


def stock_lines(
    db: psycopg.Connection[Any], store_id: int | None = None, sku: int | None = None
) -> list[dict[str, Any]]:
    """Inventory lines with days of cover and reorder flags computed here from the last 28 days of each store's
    sales (on hand / mean daily units; flagged when on hand + on order <= mean x lead time)."""
    rows = db.execute("""
        SELECT i.store_id, i.sku, i.on_hand, i.on_order, i.lead_time_days,
               (SELECT coalesce(sum(d.units), 0) FROM sales_daily d WHERE d.store_id = i.store_id AND d.sku = i.sku
                AND d.date > (SELECT max(date) FROM sales_daily m WHERE m.store_id = i.store_id) - 28) AS window_units
        FROM inventory i WHERE (%(store)s::int IS NULL OR i.store_id = %(store)s)
        AND (%(sku)s::int IS NULL OR i.sku = %(sku)s) ORDER BY i.store_id, i.sku
    """, {"store": store_id, "sku": sku}).fetchall()  # fmt: skip
    out = []
    for r in rows:
        mean = int(r["window_units"]) / 28
        cover = round(r["on_hand"] / mean, 1) if mean else None
        reorder = bool(mean) and r["on_hand"] + r["on_order"] <= mean * r["lead_time_days"]
        out.append({**r, "cover": cover, "reorder": reorder})
    return out


def column(reply: Answer, name: str) -> list[Any]:
    assert reply.table is not None
    index = reply.table.columns.index(name)
    return [row[index] for row in reply.table.rows]


# -- sales --------------------------------------------------------------------------------------------------------


async def test_compare_states_both_weeks_and_the_change(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    ask = understand("What did store 2 sell last week compared with the week before?", catalog, classifier)
    assert ask.intent == "sales.compare"
    reply = await sales.answer(ask)
    monday = catalog.as_of - dt.timedelta(days=catalog.as_of.weekday() + 7)
    week, before = (
        (monday, monday + dt.timedelta(days=6)),
        (monday - dt.timedelta(days=7), monday - dt.timedelta(days=1)),
    )
    (units, revenue), (units0, revenue0) = totals(db, *week, store_id=2), totals(db, *before, store_id=2)
    assert units and units0
    assert reply.kind == "answer" and reply.tools == ["sales_compare"]
    assert f"Store 2 sold {count(units)} units ({money(revenue)}) last week ({week[0]} to {week[1]})" in reply.text
    direction = "up" if units >= units0 else "down"
    assert f"{direction} {count(abs(units - units0))} units ({signed(units - units0, units0)})" in reply.text
    assert f"the week before ({before[0]} to {before[1]}): {count(units0)} units ({money(revenue0)})" in reply.text
    assert f"({signed(revenue - revenue0, revenue0)}) in revenue" in reply.text
    assert reply.table is not None and reply.table.rows[0][:4] == ["units", units0, units, units - units0]
    assert reply.table.period is not None
    assert (reply.table.period["start"], reply.table.period["end"]) == (str(week[0]), str(week[1]))
    assert reply.focus == {"store_ids": [2], "skus": []}


async def test_summary_defaults_to_the_last_seven_days(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    reply = await sales.answer(understand("How much did store 3 sell?", catalog, classifier, "sales.summary"))
    start = catalog.as_of - dt.timedelta(days=6)
    units, revenue = totals(db, start, catalog.as_of, store_id=3)
    assert f"sold {count(units)} units ({money(revenue)}) in the last 7 days ({start} to {catalog.as_of})" in reply.text
    assert column(reply, "date") == [str(start + dt.timedelta(days=i)) for i in range(7)]
    assert sum(column(reply, "units")) == units
    assert reply.tools == ["sales_summary"] and reply.focus["store_ids"] == [3]


async def test_summary_of_several_stores_answers_per_store(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    ask = understand("How much did stores 1 and 3 sell last month?", catalog, classifier, "sales.summary")
    assert ask.entities.store_ids == (1, 3) and ask.entities.period is not None
    reply = await sales.answer(ask)
    period = ask.entities.period
    expected = {s: totals(db, period.start, period.end, store_id=s) for s in (1, 3)}
    assert [[r[0], r[2], r[3]] for r in reply.table.rows] == [[s, *expected[s]] for s in (1, 3)]  # type: ignore[union-attr]
    for store_id, (units, revenue) in expected.items():
        assert f"store {store_id} sold {count(units)} units ({money(revenue)})" in reply.text
    assert f"({period.start} to {period.end})" in reply.text and reply.focus["store_ids"] == [1, 3]


async def test_top_sellers_rank_by_revenue_when_asked(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    ask = understand("Top 3 sellers by revenue at store 1 last month", catalog, classifier)
    assert ask.intent == "sales.top_sellers" and ask.entities.limit == 3
    reply = await sales.answer(ask)
    period = ask.entities.period
    assert period is not None
    wanted = db.execute("SELECT s.sku, p.name, sum(units) AS u, sum(units * price) AS r FROM sales_daily s JOIN "
                        "products p USING (sku) WHERE store_id = 1 AND date BETWEEN %s AND %s GROUP BY s.sku, p.name "
                        "ORDER BY r DESC, s.sku LIMIT 3", (period.start, period.end)).fetchall()  # fmt: skip
    assert column(reply, "sku") == [w["sku"] for w in wanted] and reply.focus["skus"] == [w["sku"] for w in wanted]
    for rank, w in enumerate(wanted, start=1):
        assert f"{rank}. {w['name']} (sku {w['sku']}): {count(w['u'])} units ({money(float(w['r']))})" in reply.text
    assert "by revenue" in reply.text and reply.tools == ["top_sellers"]
    by_units = await sales.answer(understand("best sellers at store 1 last month", catalog, classifier,
                                             "sales.top_sellers"))  # fmt: skip
    top_units = db.execute("SELECT sku FROM sales_daily WHERE store_id = 1 AND date BETWEEN %s AND %s GROUP BY sku "
                           "ORDER BY sum(units) DESC, sku LIMIT 5", (period.start, period.end)).fetchall()  # fmt: skip
    assert column(by_units, "sku") == [r["sku"] for r in top_units] and "by units" in by_units.text


async def test_category_share_lists_each_category_and_one_named(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    ask = understand("What share of sales does each category have at store 2 last month?", catalog, classifier)
    assert ask.intent == "sales.category_share"
    period = ask.entities.period
    assert period is not None
    rows = db.execute("SELECT p.category, sum(units) AS u, sum(units * price) AS r FROM sales_daily s JOIN products p "
                      "USING (sku) WHERE store_id = 2 AND date BETWEEN %s AND %s GROUP BY p.category ORDER BY r DESC",
                      (period.start, period.end)).fetchall()  # fmt: skip
    total = sum(float(r["r"]) for r in rows)
    reply = await sales.answer(ask)
    assert column(reply, "category") == [r["category"] for r in rows]
    for r in rows:
        share = round(100 * float(r["r"]) / total, 1)
        assert f"{r['category']} {pct(share)} ({money(float(r['r']))}, {count(r['u'])} units)" in reply.text
    named = await sales.answer(understand("How much of store 2's sales were beverages last month?", catalog,
                                          classifier, "sales.category_share"))  # fmt: skip
    bev = next(r for r in rows if r["category"] == "beverages")
    assert named.text.startswith(f"beverages made {pct(round(100 * float(bev['r']) / total, 1))} of the revenue")
    assert reply.tools == ["category_shares"]


async def test_a_failing_sales_tool_is_an_error_naming_it(
    deps: ToolDeps, catalog: Catalog, classifier: IntentClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("connection refused")

    monkeypatch.setattr(sales_tools, "compare", broken)
    reply = await sales.answer(understand("How did store 1 do last week compared with the week before?", catalog,
                                          classifier, "sales.compare"))  # fmt: skip
    assert reply.kind == "error" and reply.tools == ["sales_compare"]
    assert "sales_compare" in reply.text and "connection refused" in reply.text


async def test_an_unknown_store_is_named_not_answered_for_all_stores(
    deps: ToolDeps, catalog: Catalog, classifier: IntentClassifier
) -> None:
    reply = await sales.answer(understand("What did store 99 sell last week?", catalog, classifier, "sales.summary"))
    assert reply.kind == "unknown" and "store 99" in reply.text and reply.tools == []


# -- inventory ----------------------------------------------------------------------------------------------------


async def test_stock_of_a_product_at_a_store(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    product = product_named(db, "beverages")
    ask = understand(f"How many {product['name']} do we have in store 2?", catalog, classifier)
    assert ask.intent == "inventory.stock" and ask.entities.skus == (product["sku"],)
    reply = await inventory.answer(ask)
    (line,) = stock_lines(db, 2, product["sku"])
    cover = f"{line['cover']:,.1f} days of cover" if line["cover"] is not None else "no days of cover"
    assert reply.text.startswith(f"Store 2 has {count(line['on_hand'])} {product['name']} on hand "
                                 f"({count(line['on_order'])} on order, ")  # fmt: skip
    assert cover in reply.text and ("flagged for reorder" in reply.text) == line["reorder"]
    assert reply.tools == ["stock"] and reply.focus == {"store_ids": [2], "skus": [product["sku"]]}
    assert column(reply, "on_hand") == [line["on_hand"]]


async def test_stock_of_a_product_everywhere_has_a_row_per_store_and_the_total(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    product = product_named(db, "grocery")
    reply = await inventory.answer(understand(f"How much {product['name']} is in stock?", catalog, classifier,
                                              "inventory.stock"))  # fmt: skip
    lines = stock_lines(db, sku=product["sku"])
    total = sum(line["on_hand"] for line in lines)
    assert column(reply, "store_id") == [line["store_id"] for line in lines] + ["total"]
    assert column(reply, "on_hand") == [line["on_hand"] for line in lines] + [total]
    assert f"{count(total)} on hand across {count(len(lines))} stores" in reply.text
    assert reply.focus["store_ids"] == sorted(line["store_id"] for line in lines)


async def test_stock_of_a_store_lists_the_lowest_cover_and_the_reorder_flags(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    reply = await inventory.answer(understand("Show me the top 3 stock levels at store 3", catalog, classifier,
                                              "inventory.stock"))  # fmt: skip
    lines = stock_lines(db, 3)
    lowest = sorted(lines, key=lambda r: (r["cover"] is None, r["cover"] or 0.0, r["sku"]))[:3]
    assert column(reply, "sku") == [line["sku"] for line in lowest]
    flagged = sum(line["reorder"] for line in lines)
    assert f"Store 3 has {count(len(lines))} stock lines, {count(flagged)} flagged for reorder" in reply.text


async def test_stock_without_a_store_or_product_asks_which(
    deps: ToolDeps, catalog: Catalog, classifier: IntentClassifier
) -> None:
    reply = await inventory.answer(understand("How many do we have on hand?", catalog, classifier, "inventory.stock"))
    assert reply.kind == "clarify" and reply.text.startswith("Which store or product?") and reply.tools == []


async def test_reorder_preview_at_a_store(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    ask = understand("What should I reorder this week at store 3?", catalog, classifier)
    assert ask.intent == "inventory.reorder"
    reply = await inventory.answer(ask)
    preview = await planning_tools.reorder_preview(3, review_days=7)
    to_order = [r for r in preview if r["order_qty"] > 0]
    on_hand = {r["sku"]: r["on_hand"] for r in db.execute("SELECT sku, on_hand FROM inventory WHERE store_id = 3")}
    assert column(reply, "sku") == [r["sku"] for r in to_order] and column(reply, "order_qty") == [
        r["order_qty"] for r in to_order]  # fmt: skip
    assert column(reply, "on_hand") == [on_hand[r["sku"]] for r in to_order]
    for r in to_order[:10]:
        assert f"{r['name']} (sku {r['sku']}): order {count(r['order_qty'])} ({count(on_hand[r['sku']])} on hand" \
               in reply.text  # fmt: skip
    assert "preview" in reply.text and "start a plan for store 3" in reply.text
    assert reply.tools == ["reorder_preview"] and reply.focus["store_ids"] == [3]


async def test_reorder_without_a_store_asks_which_naming_the_stores(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    reply = await inventory.answer(understand("What should we reorder?", catalog, classifier, "inventory.reorder"))
    stores = [r["store_id"] for r in db.execute("SELECT store_id FROM stores ORDER BY store_id")]
    assert reply.kind == "clarify" and reply.text.startswith("Which store?")
    assert f"{stores[0]} to {stores[-1]}" in reply.text


async def test_a_failing_stock_tool_is_an_error_naming_it(
    deps: ToolDeps, catalog: Catalog, classifier: IntentClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise TimeoutError("pool timeout")

    monkeypatch.setattr(inventory, "stock_tool", broken)
    reply = await inventory.answer(understand("stock at store 1", catalog, classifier, "inventory.stock"))
    assert reply.kind == "error" and "the stock tool failed (pool timeout)" in reply.text


# -- pricing ------------------------------------------------------------------------------------------------------


async def test_price_of_ten_units(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    product = product_named(db, "household")
    ask = understand(f"What is the price of 10 units of {product['name']} at store 2?", catalog, classifier,
                     "pricing.price")  # fmt: skip
    reply = await pricing.answer(ask)
    base = float(one(db, "SELECT unit_price FROM products WHERE sku = %s", (product["sku"],))["unit_price"])
    promo = one(db, "SELECT max(discount) AS d FROM promotions WHERE store_id = 2 AND sku = %s AND starts_on <= %s "
                "AND ends_on >= %s", (product["sku"], catalog.as_of, catalog.as_of))["d"]  # fmt: skip
    (row,) = reply.table.rows  # type: ignore[union-attr]
    sku, _name, quantity, base_price, discount, unit, total, _saving, _rule, on = row
    assert (sku, quantity, base_price, on) == (product["sku"], 10, base, catalog.as_of.isoformat())
    assert discount <= 100 * float(promo or 0) + 1e-9 and round(unit * 10, 2) == total
    if promo is None:
        assert discount == 0 and "no promotion runs for this item in store 2" in reply.text
    assert f"base price {money(base)}, discount {pct(discount)}, {money(unit)} each after discount, total " \
           f"{money(total)}" in reply.text  # fmt: skip
    assert "Rule: " in reply.text and reply.tools == ["price"]
    assert reply.focus == {"store_ids": [2], "skus": [product["sku"]]}


async def test_price_with_a_running_promotion_states_its_discount(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    day = catalog.as_of
    promo = db.execute("SELECT promotion_id, store_id, sku, discount FROM promotions WHERE starts_on <= %s AND "
                       "ends_on >= %s ORDER BY discount DESC LIMIT 1", (day, day)).fetchone()  # fmt: skip
    if promo is None:
        pytest.skip("the seed runs no promotion on its last day")
    reply = await pricing.answer(understand(f"price for 4 of sku {promo['sku']} at store {promo['store_id']}",
                                            catalog, classifier, "pricing.price"))  # fmt: skip
    expected = await pricing_tools.calculate(promo["sku"], 4, store_id=promo["store_id"], on=catalog.as_of)
    assert expected["discount_percent"] > 0 and f"discount {pct(expected['discount_percent'])}" in reply.text
    assert f"promotion {expected['promotion']['promotion_id']} takes" in reply.text
    assert f"total {money(expected['total_cost'])}" in reply.text and f"4 x {expected['product_name']}" in reply.text


async def test_recommend_states_the_tools_suggestion(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier
) -> None:
    product = product_named(db, "beverages")
    reply = await pricing.answer(understand(f"Should we discount {product['name']} at store 1?", catalog, classifier,
                                            "pricing.recommend"))  # fmt: skip
    tool = await pricing_tools.recommend(product["sku"], store_id=1)
    assert reply.tools == ["price_recommendation"] and column(reply, "discount_pct") == [
        tool["recommended_discount_percent"]]  # fmt: skip
    if tool["recommended_discount_percent"] > 0:
        assert f"{pct(tool['recommended_discount_percent'])} off" in reply.text
        assert f"{money(tool['recommended_price'])} instead of {money(tool['current_price'])}" in reply.text
    else:
        assert reply.text.startswith(f"I would not discount {product['name']}") and tool["reason"] in reply.text


async def test_pricing_without_a_product_asks_which(
    deps: ToolDeps, catalog: Catalog, classifier: IntentClassifier
) -> None:
    reply = await pricing.answer(understand("How much are 10 units at store 2?", catalog, classifier, "pricing.price"))
    assert reply.kind == "clarify" and reply.text.startswith("Which product?") and reply.tools == []


async def test_pricing_not_found_is_unknown(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    async def missing(sku: int, store_id: int | None = None, on: Any = None) -> Any:
        raise NotFound("sku", f"store {store_id} has no sales of sku {sku}")

    monkeypatch.setattr(pricing_tools, "recommend", missing)
    product = product_named(db, "toys")
    reply = await pricing.answer(understand(f"discount suggestion for sku {product['sku']} at store 2", catalog,
                                            classifier, "pricing.recommend"))  # fmt: skip
    assert reply.kind == "unknown" and f"store 2 has no sales of sku {product['sku']}" in reply.text
    assert reply.tools == ["price_recommendation"]


async def test_a_suggested_discount_is_stated_with_its_effect(
    deps: ToolDeps, db: psycopg.Connection[Any], catalog: Catalog, classifier: IntentClassifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    product = product_named(db, "apparel")
    real = await pricing_tools.recommend(product["sku"], store_id=2)
    effect = {"expected_lift_percent": 31.4, "baseline_units": 120.0, "expected_units": 157.7, "extra_units": 37.7,
              "margin_percent_after": 41.2, "margin_impact": -80.5, "holding_cost_saved": 3.25,
              "net_benefit": 54.75}  # fmt: skip
    suggested = {**real, "recommended_discount_percent": 15.0, "recommended_price": 61.19, "promotion_days": 14,
                 "reason": "excess stock; 15 % pays", "expected_effect": effect,
                 "approval_role": "approver"}  # fmt: skip

    async def fake(sku: int, store_id: int | None = None, on: Any = None) -> dict[str, Any]:
        assert (sku, store_id) == (product["sku"], 2)
        return suggested

    monkeypatch.setattr(pricing_tools, "recommend", fake)
    reply = await pricing.answer(understand(f"Should we put {product['name']} on sale at store 2?", catalog,
                                            classifier, "pricing.recommend"))  # fmt: skip
    assert f"15.0 % off for 14 days, $61.19 instead of {money(real['current_price'])}" in reply.text
    assert "Why: excess stock; 15 % pays." in reply.text and "31.4 % more units" in reply.text
    assert "37.7 units extra" in reply.text and "net benefit $54.75" in reply.text and "approver" in reply.text
    assert column(reply, "net_benefit") == [54.75]


def test_quantity_and_ranking_words_are_read_from_the_question() -> None:
    beans = [ProductRef(1002, "Tidewell Espresso Beans", "beverages")]
    assert pricing.quantity_of("price of 10 units of sku 1002 at store 2", beans) == 10
    assert pricing.quantity_of("how much for 12 at store 3?", beans) == 12
    assert pricing.quantity_of("what do 3 espresso beans cost at store 2", beans) == 3
    assert pricing.quantity_of("price of espresso beans at store 2", beans) == 1
    assert pricing.quantity_of("price of 0 units", beans) is None
    assert sales.ranks_by_revenue("top sellers by revenue") and sales.ranks_by_revenue("which made the most $")
    assert not sales.ranks_by_revenue("top 5 sellers last week")
