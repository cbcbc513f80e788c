"""Stock reads and adjustments over HTTP: the numbers equal SQL, concurrent updates never lose a write, versions and
idempotency keys are honoured, stock never goes negative, every change is in the ledger and the audit log, and
errors come back in the seed's envelope naming the field."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from conftest import Clients

QUERY = "/api/inventory/query"
UPDATE = "/api/inventory/update"


def _row(sql: psycopg.Connection[Any], store: int, sku: int) -> dict[str, Any]:
    row = sql.execute("SELECT on_hand, on_order, version FROM inventory WHERE store_id = %s AND sku = %s",
                      (store, sku)).fetchone()  # fmt: skip
    assert row is not None
    return dict(row)


def _ledger(sql: psycopg.Connection[Any], store: int, sku: int) -> list[dict[str, Any]]:
    rows = sql.execute("SELECT * FROM inventory_adjustments WHERE store_id = %s AND sku = %s ORDER BY adjustment_id",
                       (store, sku)).fetchall()  # fmt: skip
    return [dict(r) for r in rows]


def _assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    assert body["task_id"] and body["timestamp"].endswith("Z") and body["detail"] == body["error"]["message"]
    return dict(body)


async def test_stock_numbers_equal_sql(http: Clients, sql: psycopg.Connection[Any]) -> None:
    response = await http["viewer"].post(QUERY, json={"action": "query", "store_id": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and body["task_id"]
    items = body["data"]["items"]
    expected = sql.execute("""
        SELECT i.sku, i.on_hand, i.on_order, i.lead_time_days, p.name,
               (SELECT coalesce(sum(units), 0) FROM sales_daily s WHERE s.store_id = i.store_id AND s.sku = i.sku
                  AND s.date > (SELECT max(date) FROM sales_daily WHERE store_id = 2) - 28) AS units
        FROM inventory i JOIN products p USING (sku) WHERE i.store_id = 2 ORDER BY i.sku""").fetchall()  # fmt: skip
    assert [i["sku"] for i in items] == [r["sku"] for r in expected] and body["data"]["count"] == len(expected)
    for item, row in zip(items, expected, strict=True):
        mean = row["units"] / 28
        assert (item["on_hand"], item["on_order"], item["lead_time_days"], item["product_name"]) == (
            row["on_hand"], row["on_order"], row["lead_time_days"], row["name"])  # fmt: skip
        assert item["mean_daily_sales"] == round(mean, 3)
        assert item["days_of_cover"] == (round(row["on_hand"] / mean, 1) if mean else None)
        lead_time_demand = round(mean * row["lead_time_days"], 1)
        assert item["reorder"] == (mean > 0 and row["on_hand"] + row["on_order"] <= lead_time_demand)


async def test_query_filters_and_reorder(http: Clients, sql: psycopg.Connection[Any]) -> None:
    category = sql.execute("SELECT category FROM products WHERE sku = 1003").fetchone()["category"]  # type: ignore[index]
    one = (await http["viewer"].post(QUERY, json={"sku": 1003})).json()["data"]
    assert {i["store_id"] for i in one["items"]} == {1, 2, 3} and {i["sku"] for i in one["items"]} == {1003}
    by_category = (await http["viewer"].post(QUERY, json={"category": category.upper(), "store_id": 1})).json()
    assert by_category["data"]["items"] and {i["category"] for i in by_category["data"]["items"]} == {category}
    reorder = (await http["viewer"].post(QUERY, json={"action": "reorder"})).json()["data"]["items"]
    everything = (await http["viewer"].post(QUERY, json={})).json()["data"]["items"]
    assert reorder == [i for i in everything if i["reorder"]]


async def test_unknown_sku_is_404_with_close_matches(http: Clients) -> None:
    body = _assert_error(await http["viewer"].post(QUERY, json={"action": "query", "sku": "SKU001"}), 404,
                         "DATA_NOT_FOUND")  # fmt: skip
    assert body["error"]["details"]["sku"] == "SKU001"
    assert body["error"]["details"]["available_skus"] == [1001, 1002, 1003, 1004, 1005]
    body = _assert_error(await http["viewer"].post(QUERY, json={"sku": 1012}), 404, "DATA_NOT_FOUND")
    assert body["error"]["details"]["available_skus"] == [1004, 1005, 1006, 1007, 1008]
    assert body["error"]["message"].startswith("sku: ")
    body = _assert_error(await http["viewer"].post(QUERY, json={"store_id": 9}), 404, "DATA_NOT_FOUND")
    assert body["error"]["details"]["available_store_ids"] == [1, 2, 3]
    body = _assert_error(await http["viewer"].post(QUERY, json={"category": "Spaceships"}), 404, "DATA_NOT_FOUND")
    assert body["error"]["details"]["available_categories"]


async def test_twenty_concurrent_increments_lose_nothing(http: Clients, sql: psycopg.Connection[Any]) -> None:
    before = _row(sql, 1, 1001)
    body = {"action": "update", "sku": 1001, "store_id": 1, "delta": 1, "reason": "received"}
    answers = await asyncio.gather(*(http["operator"].post(UPDATE, json=body) for _ in range(20)))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers if a.status_code != 200]
    after = _row(sql, 1, 1001)
    assert after["on_hand"] == before["on_hand"] + 20
    assert after["version"] == before["version"] + 20
    ledger = _ledger(sql, 1, 1001)
    assert len(ledger) == 20
    assert sorted(r["before_qty"] for r in ledger) == list(range(before["on_hand"], before["on_hand"] + 20))
    assert all(r["after_qty"] == r["before_qty"] + 1 and r["actor"] == "operator-1" for r in ledger)
    tasks = [a.json()["task_id"] for a in answers]
    audit = sql.execute("SELECT task_id::text, actor, endpoint, event FROM audit_log WHERE task_id = ANY(%s::uuid[])",
                        (tasks,)).fetchall()  # fmt: skip
    assert len(audit) == 20
    assert {(r["actor"], r["endpoint"], r["event"]) for r in audit} == {("operator-1", UPDATE, "TASK_COMPLETED")}


async def test_two_set_to_on_one_version_one_wins(http: Clients, sql: psycopg.Connection[Any]) -> None:
    version = _row(sql, 1, 1002)["version"]
    bodies = [{"sku": 1002, "store_id": 1, "set_to": count, "expected_version": version, "reason": "stock count"}
              for count in (40, 41)]  # fmt: skip
    answers = await asyncio.gather(*(http["operator"].post(UPDATE, json=b) for b in bodies))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    won = next(a for a in answers if a.status_code == 200).json()["data"]
    lost = _assert_error(next(a for a in answers if a.status_code == 409), 409, "VERSION_CONFLICT")
    assert lost["error"]["details"] == {"field": "expected_version", "expected_version": version,
                                        "current_version": version + 1, "on_hand": won["after"]}  # fmt: skip
    assert "expected_version" in lost["error"]["message"]
    assert _row(sql, 1, 1002)["on_hand"] == won["after"] and won["version"] == version + 1
    failed = sql.execute("SELECT actor, outcome FROM audit_log WHERE task_id = %s", (lost["task_id"],)).fetchone()
    assert failed is not None and failed["outcome"]["code"] == "VERSION_CONFLICT"


async def test_a_retried_key_changes_nothing_twice(http: Clients, sql: psycopg.Connection[Any]) -> None:
    before = _row(sql, 2, 1003)["on_hand"]
    body = {"sku": 1003, "store_id": 2, "delta": -2, "reason": "damaged", "idempotency_key": "count-2-1003-a"}
    first, again = [await http["operator"].post(UPDATE, json=body) for _ in range(2)]
    assert first.status_code == again.status_code == 200, again.text
    assert first.json()["data"]["replayed"] is False and again.json()["data"]["replayed"] is True
    assert again.json()["data"]["adjustment_id"] == first.json()["data"]["adjustment_id"]
    assert _row(sql, 2, 1003)["on_hand"] == before - 2
    assert len(_ledger(sql, 2, 1003)) == 1
    reused = await http["operator"].post(UPDATE, json={**body, "delta": -3})
    assert "another adjustment" in _assert_error(reused, 409, "IDEMPOTENCY_KEY_REUSED")["error"]["message"]
    assert _row(sql, 2, 1003)["on_hand"] == before - 2
    events = sql.execute("SELECT event FROM audit_log WHERE task_id = %s", (again.json()["task_id"],)).fetchall()
    assert [e["event"] for e in events] == ["TASK_REPLAYED"]


async def test_a_negative_result_is_refused_with_the_numbers(http: Clients, sql: psycopg.Connection[Any]) -> None:
    on_hand = _row(sql, 3, 1004)["on_hand"]
    response = await http["operator"].post(UPDATE, json={"sku": 1004, "store_id": 3, "delta": -(on_hand + 1),
                                                         "reason": "shrinkage"})  # fmt: skip
    body = _assert_error(response, 422, "NEGATIVE_STOCK")
    [problem] = body["error"]["details"]
    assert problem["field"] == "delta" and (problem["on_hand"], problem["result"]) == (on_hand, -1)
    assert body["error"]["message"].startswith("delta: ") and "cannot go below 0" in body["error"]["message"]
    assert _row(sql, 3, 1004)["on_hand"] == on_hand and _ledger(sql, 3, 1004) == []


async def test_roles_and_auth_in_the_seed_envelope(http: Clients, sql: psycopg.Connection[Any]) -> None:
    body = {"sku": 1005, "store_id": 1, "delta": 5, "reason": "received"}
    before = _row(sql, 1, 1005)["on_hand"]
    denied = _assert_error(await http["viewer"].post(UPDATE, json=body), 403, "FORBIDDEN")
    assert "needs the operator role" in denied["detail"]
    missing = await http["anonymous"].post(QUERY, json={})
    _assert_error(missing, 401, "UNAUTHORIZED")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert _row(sql, 1, 1005)["on_hand"] == before
    assert (await http["operator"].post(QUERY, json={"sku": 1005})).status_code == 200


async def test_bad_input_names_the_field(http: Clients) -> None:
    cases = [
        ({"action": "query", "sku": 1001, "store_id": 1, "delta": 1, "reason": "x"}, "action"),
        ({"sku": 1001, "store_id": 1, "reason": "x"}, "delta"),
        ({"sku": 1001, "store_id": 1, "delta": 1, "set_to": 3, "reason": "x"}, "delta"),
        ({"sku": 1001, "store_id": 1, "delta": 1.5, "reason": "x"}, "delta"),
        ({"sku": 1001, "store_id": 1, "set_to": -1, "reason": "x"}, "set_to"),
        ({"sku": 1001, "store_id": 1, "delta": 1}, "reason"),
        ({"sku": 1001, "store_id": 1, "delta": 1, "reason": "x", "colour": "red"}, "colour"),
        ({"sku": True, "store_id": 1, "delta": 1, "reason": "x"}, "sku"),
        ({"sku": 1001, "store_id": "1", "delta": 1, "reason": "x"}, "store_id"),
    ]
    for body, field in cases:
        response = await http["operator"].post(UPDATE, json=body)
        error = _assert_error(response, 422, response.json()["error"]["code"])["error"]
        assert error["code"] in ("VALIDATION_ERROR", "INVALID_REQUEST"), error
        assert any(p["field"] == field for p in error["details"]), (body, error)
        assert field in error["message"]
    # a body that is not JSON is refused by the input guard before any route runs (the API's common envelope)
    not_json = await http["operator"].post(UPDATE, content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["error"]["details"][0]["field"] == "body"


async def test_one_key_on_two_rows_at_once_writes_one(http: Clients, sql: psycopg.Connection[Any]) -> None:
    before = {sku: _row(sql, 3, sku)["on_hand"] for sku in (1006, 1007)}
    bodies = [{"sku": sku, "store_id": 3, "delta": 4, "reason": "received", "idempotency_key": "shared-key-1"}
              for sku in (1006, 1007)]  # fmt: skip
    answers = await asyncio.gather(*(http["operator"].post(UPDATE, json=b) for b in bodies))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    _assert_error(next(a for a in answers if a.status_code == 409), 409, "IDEMPOTENCY_KEY_REUSED")
    won = next(a for a in answers if a.status_code == 200).json()["data"]["sku"]
    after = {sku: _row(sql, 3, sku)["on_hand"] for sku in (1006, 1007)}
    assert after == {sku: before[sku] + (4 if sku == won else 0) for sku in before}
    keyed = sql.execute("SELECT count(*) AS n FROM inventory_adjustments WHERE idempotency_key = 'shared-key-1'")
    assert keyed.fetchone() == {"n": 1}
