"""The chat's read tools against SQL on the seeded data: sales totals, comparisons, top sellers and category shares
over periods; the open orders likely late (scored in memory, nothing written); the reorder preview."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tools import planning, sales
from tools.deps import ToolDeps
from tools.planning import reorder_preview
from tools.risk import likely_late, open_order_risks
from tools.sales import Scope


async def test_sales_answers_equal_sql(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    end = await sales.as_of()
    start = end - timedelta(days=6)
    row = db.execute("SELECT sum(units) AS u, sum(units * price) AS r FROM sales_daily WHERE store_id = 2 AND date "
                     "BETWEEN %s AND %s", (start, end)).fetchone()  # fmt: skip
    totals = await sales.totals(Scope(store_id=2), start, end)
    assert (totals["units"], totals["revenue"]) == (int(row["u"]), round(float(row["r"]), 2)) and totals["days"] == 7
    before = await sales.totals(Scope(store_id=2), start - timedelta(days=7), start - timedelta(days=1))
    table = await sales.compare(Scope(store_id=2), (start, end), (start - timedelta(days=7), start - timedelta(days=1)))
    assert table.rows[0][1:4] == [before["units"], totals["units"], totals["units"] - before["units"]]
    top = await sales.top_sellers(Scope(), start, end, limit=3)
    wanted = db.execute("SELECT sku, sum(units) AS u FROM sales_daily WHERE date BETWEEN %s AND %s GROUP BY sku "
                        "ORDER BY u DESC, sku LIMIT 3", (start, end)).fetchall()  # fmt: skip
    assert [(r[0], r[3]) for r in top.rows] == [(w["sku"], int(w["u"])) for w in wanted]
    shares = await sales.category_shares(Scope(store_id=1), start, end)
    assert abs(sum(r[3] for r in shares.rows) - 100) < 0.5
    assert (await sales.totals(Scope(store_id=1, skus=[99999]), start, end))["units"] == 0


async def test_likely_late_scores_open_orders_in_memory(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    risks = await open_order_risks()
    open_orders = db.execute("SELECT count(*) AS n FROM orders WHERE order_status IN ('processing', 'shipped', "
                             "'delayed')").fetchone()["n"]  # fmt: skip
    assert len(risks) == open_orders and {r.scored for r in risks} == {"now"}
    assert db.execute("SELECT count(*) AS n FROM predictions").fetchone()["n"] == 0  # a question writes nothing
    late, total = await likely_late(warehouse_block="F", limit=5)
    assert total == sum(1 for r in risks if r.warehouse_block == "F" and r.delay_probability > 0.5)
    assert [r.delay_probability for r in late] == sorted((r.delay_probability for r in late), reverse=True)
    assert all(r.warehouse_block == "F" and r.factors for r in late)


async def test_the_reorder_preview_lists_what_the_planner_would_order(deps: ToolDeps) -> None:
    preview = await reorder_preview(3)
    assert len(preview) == 8 and all(r["order_qty"] >= 0 for r in preview)
    risks = [r["stockout_risk"] for r in preview]
    assert risks == sorted(risks, reverse=True)


async def test_the_reorder_preview_reuses_its_forecasts_until_a_sale_changes(
    deps: ToolDeps, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    read_history = planning.sales_history

    async def counted(store_id: int, *args: Any) -> Any:
        reads.append(store_id)
        return await read_history(store_id, *args)

    monkeypatch.setattr(planning, "sales_history", counted)
    planning._previews.clear()
    first = await reorder_preview(3)
    assert await reorder_preview(3) == first and reads == [3]  # the second answer reused the forecasts
    sku = first[0]["sku"]
    on_hand = db.execute("SELECT on_hand FROM inventory WHERE store_id = 3 AND sku = %s", (sku,)).fetchone()["on_hand"]
    db.execute("UPDATE inventory SET on_hand = on_hand + 1000 WHERE store_id = 3 AND sku = %s", (sku,))
    try:  # new stock, same forecast: planned again from the kept forecast
        stocked = {r["sku"]: r for r in await reorder_preview(3)}
        assert stocked[sku]["on_hand"] == on_hand + 1000 and stocked[sku]["order_qty"] == 0 and reads == [3]
    finally:
        db.execute("UPDATE inventory SET on_hand = %s WHERE store_id = 3 AND sku = %s", (on_hand, sku))
    day = db.execute("SELECT max(date) AS d FROM sales_daily WHERE store_id = 3 AND sku = %s", (sku,)).fetchone()["d"]
    db.execute("UPDATE sales_daily SET units = units + 400 WHERE store_id = 3 AND sku = %s AND date = %s", (sku, day))
    try:
        changed = await reorder_preview(3)
        assert reads == [3, 3]  # a changed sale is a new history: forecast again
        planning._previews.clear()
        assert await reorder_preview(3) == changed  # and what it answered is what a cold start answers
    finally:
        db.execute("UPDATE sales_daily SET units = units - 400 WHERE store_id = 3 AND sku = %s AND date = %s",
                   (sku, day))  # fmt: skip
    assert await reorder_preview(3) == first
