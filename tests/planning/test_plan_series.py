"""What the console's plan form and charts read: ``GET /plans/stores`` lists each store's stocked items as the
inventory holds them with the policy's defaults, and ``GET /plans/{id}/series`` gives each line the sales recorded
before the plan, the plan's own P50/P90 forecast, the stock projected with and without its order (the approved
quantity once decided) and the bounds of an approver's edit."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import httpx
import psycopg

from tools.planning import project_stock

Clients = dict[str, httpx.AsyncClient]
STORE3 = {"store_id": 3, "horizon_days": 14,
          "constraints": {"lead_time_days": 4, "budget_limit": 50_000, "max_discount": 0.2},
          "items": [{"item_id": sku, "current_stock": 0} for sku in (1001, 1004, 1007)]}  # fmt: skip


async def test_the_stores_and_their_items(served: tuple[Any, Clients], db: psycopg.Connection[Any]) -> None:
    _, http = served
    answer = (await http["viewer"].get("/plans/stores")).json()
    assert [s["store_id"] for s in answer["stores"]] == [1, 2, 3]
    store = answer["stores"][2]
    rows = db.execute("SELECT i.sku, p.name, i.on_hand, i.on_order, i.lead_time_days FROM inventory i JOIN products "
                      "p USING (sku) WHERE store_id = 3 ORDER BY sku").fetchall()  # fmt: skip
    assert [(i["item_id"], i["name"], i["on_hand"], i["on_order"], i["lead_time_days"]) for i in store["items"]] == [
        (r["sku"], r["name"], r["on_hand"], r["on_order"], r["lead_time_days"]) for r in rows]  # fmt: skip
    assert store["name"] == db.execute("SELECT name FROM stores WHERE store_id = 3").fetchone()["name"]
    assert answer["defaults"] == {"lead_time_days": 7, "budget_limit": 100000.0, "max_discount": 0.3}  # the policy
    assert answer["max_cover_days"] == 56


async def test_a_plans_series_then_the_approved_quantity(
    served: tuple[Any, Clients], db: psycopg.Connection[Any]
) -> None:
    _, http = served
    plan = (await http["operator"].post("/plans", json=STORE3)).json()
    assert plan["status"] == "pending_approval"
    series = (await http["viewer"].get(f"/plans/{plan['plan_id']}/series", params={"history_days": 28})).json()
    state = (await http["viewer"].get(f"/threads/{plan['plan_id']}/state")).json()["values"]
    starts = date.fromisoformat(series["starts_on"])
    assert starts == db.execute("SELECT max(date) AS d FROM sales_daily WHERE store_id = 3").fetchone()["d"] + \
        timedelta(days=1)  # fmt: skip
    assert [line["item_id"] for line in series["lines"]] == [1001, 1004, 1007]
    for line, rec in zip(series["lines"], plan["recommendations"], strict=True):
        sold = db.execute("SELECT date, units FROM sales_daily WHERE store_id = 3 AND sku = %s AND date >= %s "
                          "ORDER BY date", (line["item_id"], starts - timedelta(days=28))).fetchall()  # fmt: skip
        assert line["history"] == {"dates": [r["date"].isoformat() for r in sold], "units": [r["units"] for r in sold]}
        forecast = state["forecasts"][str(line["item_id"])]
        assert (line["forecast"]["p50"], line["forecast"]["p90"]) == (forecast["p50"], forecast["p90"])
        assert line["forecast"]["dates"][0] == series["starts_on"] and len(line["forecast"]["dates"]) == 4 + 14
        on_order = db.execute("SELECT on_order FROM inventory WHERE store_id = 3 AND sku = %s",
                              (line["item_id"],)).fetchone()["on_order"]  # fmt: skip
        stock = line["stock"]
        assert (stock["on_hand"], stock["start"], stock["order_qty"]) == (0, on_order, rec["recommended_order_qty"])
        assert stock["arrives_on"] == (starts + timedelta(days=4)).isoformat() and stock["arrives_at"] == 4
        assert stock["projected"] == project_stock(on_order, forecast["p50"], 4, rec["recommended_order_qty"])
        assert stock["without_order"] == project_stock(on_order, forecast["p50"], None, 0)
        if rec["recommended_order_qty"]:
            assert stock["projected"][4] > stock["without_order"][4]  # the order lands on day 4
        upto = next(r for r in state["lines"] if r["item_id"] == line["item_id"])["order_up_to"]
        assert line["limits"]["max_order_qty"] == (10 * max(1, math.ceil(upto)) if rec["recommended_order_qty"] else 0)

    target = next(r for r in plan["recommendations"] if r["recommended_order_qty"] > 1)
    edited = target["recommended_order_qty"] - 1
    approved = await http["approver"].post(f"/plans/{plan['plan_id']}/approve",
                                           json={"edits": [{"item_id": target["item_id"], "order_qty": edited}]})
    assert approved.status_code == 200, approved.text
    after = (await http["viewer"].get(f"/plans/{plan['plan_id']}/series")).json()
    line = next(x for x in after["lines"] if x["item_id"] == target["item_id"])
    assert line["stock"]["order_qty"] == edited  # the written quantity, as the purchase order holds it
    assert db.execute("SELECT quantity FROM purchase_orders WHERE thread_id = %s AND sku = %s",
                      (plan["plan_id"], target["item_id"])).fetchone()["quantity"] == edited  # fmt: skip
    assert len(line["history"]["dates"]) == 56  # the default
    assert (await http["viewer"].get(f"/plans/{plan['plan_id']}/series", params={"history_days": 3})).status_code \
        == 422  # fmt: skip
