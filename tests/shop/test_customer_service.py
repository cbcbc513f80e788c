"""Customer service over HTTP: a profile's numbers equal SQL, tickets are attributed, audited and idempotent, loyalty
points change under a row lock (racing redeems lose nothing and never go below zero), writes need the operator
role, and errors come back in the seed's envelope naming the field."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from conftest import Clients

PROFILE = "/api/customer/profile"
TICKET = "/api/customer/support-ticket"
LOYALTY = "/api/customer/loyalty"


def _assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    assert body["task_id"] and body["timestamp"].endswith("Z") and body["detail"] == body["error"]["message"]
    return dict(body)


def _customers(sql: psycopg.Connection[Any], n: int, offset: int) -> list[int]:
    rows = sql.execute("SELECT customer_id FROM customers ORDER BY customer_id OFFSET %s LIMIT %s", (offset, n))
    return [r["customer_id"] for r in rows.fetchall()]


def _points(sql: psycopg.Connection[Any], customer_id: int) -> int:
    row = sql.execute("SELECT loyalty_points FROM customers WHERE customer_id = %s", (customer_id,)).fetchone()
    assert row is not None
    return int(row["loyalty_points"])


def _ledger(sql: psycopg.Connection[Any], customer_id: int) -> list[dict[str, Any]]:
    rows = sql.execute("SELECT * FROM loyalty_transactions WHERE customer_id = %s ORDER BY transaction_id",
                       (customer_id,)).fetchall()  # fmt: skip
    return [dict(r) for r in rows]


def _audit(sql: psycopg.Connection[Any], task_id: str) -> list[dict[str, Any]]:
    rows = sql.execute("SELECT actor, endpoint, event, request, outcome FROM audit_log WHERE task_id = %s "
                       "ORDER BY audit_id", (task_id,)).fetchall()  # fmt: skip
    return [dict(r) for r in rows]


# -- profile --------------------------------------------------------------------------------------------------


async def test_profile_numbers_equal_sql(http: Clients, sql: psycopg.Connection[Any]) -> None:
    picked = sql.execute("""
        SELECT customer_id FROM orders GROUP BY customer_id
        ORDER BY count(*) FILTER (WHERE payment_status = 'refunded') DESC, count(*) DESC, customer_id LIMIT 1
    """).fetchone()  # fmt: skip
    assert picked is not None
    cid = picked["customer_id"]
    refunded = sql.execute("SELECT count(*) AS n FROM orders WHERE customer_id = %s AND payment_status = 'refunded'",
                           (cid,)).fetchone()  # fmt: skip
    assert refunded is not None and refunded["n"] > 0, "checked on a customer with a refunded order"
    row = sql.execute("""
        SELECT c.*, count(o.order_id) AS orders,
               count(o.order_id) FILTER (WHERE o.payment_status = 'refunded') AS refunded,
               coalesce(sum(o.order_value) FILTER (WHERE o.payment_status <> 'refunded'), 0)::float AS spent,
               max(o.order_date) AS last_order,
               greatest((SELECT as_of FROM dataset_info WHERE id = 1), (SELECT max(order_date) FROM orders)) AS as_of
        FROM customers c LEFT JOIN orders o USING (customer_id) WHERE c.customer_id = %s GROUP BY c.customer_id
    """, (cid,)).fetchone()  # fmt: skip
    assert row is not None
    for value in (cid, str(cid), f"C{cid:05d}"):
        response = await http["viewer"].post(PROFILE, json={"action": "query_customer", "customer_id": value})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success" and body["task_id"]
        data = body["data"]
        assert data["customer_id"] == cid
    seeded = ("name", "email", "city", "segment", "loyalty_points", "prior_purchases", "rating")
    assert {k: data[k] for k in seeded} == {k: row[k] for k in seeded}
    assert data["member_since"] == row["created_at"].isoformat()
    assert (data["orders"], data["refunded_orders"]) == (row["orders"], row["refunded"])
    assert data["total_purchases"] == round(row["spent"], 2)
    analytics = data["analytics"]
    assert analytics["rfm"] == {"recency_days": (row["as_of"] - row["last_order"]).days, "frequency": row["orders"],
                                "monetary": round(row["spent"], 2)}  # fmt: skip
    assert analytics["rfm_segment"] and analytics["how"] and analytics["as_of"] == row["as_of"].isoformat()
    assert data["lifetime_value"] == analytics["lifetime_value"] and isinstance(analytics["churn_risk"], bool)


async def test_unknown_customer_is_404_naming_it(http: Clients, sql: psycopg.Connection[Any]) -> None:
    asked = {"action": "query_customer", "customer_id": 99999999}
    body = _assert_error(await http["viewer"].post(PROFILE, json=asked), 404, "DATA_NOT_FOUND")
    assert body["error"]["message"].startswith("customer_id: ") and "99999999" in body["error"]["message"]
    assert body["error"]["details"]["customer_id"] == 99999999
    largest = sql.execute("SELECT customer_id FROM customers ORDER BY customer_id DESC LIMIT 5").fetchall()
    assert body["error"]["details"]["available_customer_ids"] == sorted(r["customer_id"] for r in largest)
    body = _assert_error(await http["viewer"].post(PROFILE, json={"customer_id": "CUST-NOBODY"}), 404,
                         "DATA_NOT_FOUND")  # fmt: skip
    assert "CUST-NOBODY" in body["detail"]
    missing = _assert_error(await http["viewer"].post(LOYALTY, json={"action": "balance", "customer_id": 99999999}),
                            404, "DATA_NOT_FOUND")  # fmt: skip
    assert "99999999" in missing["detail"]


# -- support tickets ------------------------------------------------------------------------------------------


async def test_ticket_is_attributed_audited_and_idempotent(http: Clients, sql: psycopg.Connection[Any]) -> None:
    [cid] = _customers(sql, 1, 0)
    body = {"action": "create_ticket", "customer_id": cid, "subject": "Parcel arrived damaged",
            "description": "The box was crushed and the item is scratched.", "priority": "high",
            "idempotency_key": "ticket-test-1"}  # fmt: skip
    first = await http["operator"].post(TICKET, json=body)
    assert first.status_code == 200, first.text
    data = first.json()["data"]
    assert data["replayed"] is False and data["actor"] == "operator-1" and data["status"] == "open"
    row = sql.execute("SELECT * FROM tickets WHERE ticket_id = %s", (data["ticket_id"],)).fetchone()
    assert row is not None
    assert (row["customer_id"], row["subject"], row["description"], row["priority"], row["actor"],
            row["idempotency_key"]) == (cid, body["subject"], body["description"], "high", "operator-1",
                                        "ticket-test-1")  # fmt: skip
    [audit] = _audit(sql, first.json()["task_id"])
    assert (audit["actor"], audit["endpoint"], audit["event"]) == ("operator-1", TICKET, "TASK_COMPLETED")
    assert audit["outcome"]["ticket_id"] == data["ticket_id"] and audit["request"]["subject"] == body["subject"]

    again = await http["operator"].post(TICKET, json=body)
    assert again.status_code == 200, again.text
    assert again.json()["data"]["replayed"] is True and again.json()["data"]["ticket_id"] == data["ticket_id"]
    assert [a["event"] for a in _audit(sql, again.json()["task_id"])] == ["TASK_REPLAYED"]

    reused = await http["operator"].post(TICKET, json={**body, "subject": "Another problem"})
    conflict = _assert_error(reused, 409, "IDEMPOTENCY_KEY_REUSED")
    assert conflict["error"]["message"].startswith("idempotency_key: ")
    assert [a["event"] for a in _audit(sql, conflict["task_id"])] == ["TASK_FAILED"]
    keyed = sql.execute("SELECT count(*) AS n FROM tickets WHERE idempotency_key = 'ticket-test-1'").fetchone()
    assert keyed == {"n": 1}

    plain_body = {"action": "create_ticket", "customer_id": f"C{cid:05d}", "subject": "Question",
                  "description": "Where is it?"}  # fmt: skip
    plain = await http["operator"].post(TICKET, json=plain_body)
    assert plain.status_code == 200 and plain.json()["data"]["priority"] == "medium"
    assert plain.json()["data"]["ticket_id"] != data["ticket_id"]


async def test_ticket_order_and_role_checks(http: Clients, sql: psycopg.Connection[Any]) -> None:
    order = sql.execute("SELECT order_id, customer_id FROM orders ORDER BY order_id LIMIT 1").fetchone()
    assert order is not None
    body = {"customer_id": order["customer_id"], "subject": "Late", "description": "Not delivered yet",
            "order_id": order["order_id"]}  # fmt: skip
    before = sql.execute("SELECT count(*) AS n FROM tickets").fetchone()
    denied = _assert_error(await http["viewer"].post(TICKET, json=body), 403, "FORBIDDEN")
    assert "needs the operator role" in denied["detail"]
    assert sql.execute("SELECT count(*) AS n FROM tickets").fetchone() == before
    made = await http["operator"].post(TICKET, json=body)
    assert made.status_code == 200 and made.json()["data"]["order_id"] == order["order_id"], made.text
    other = sql.execute("SELECT customer_id FROM customers WHERE customer_id <> %s LIMIT 1",
                        (order["customer_id"],)).fetchone()  # fmt: skip
    assert other is not None
    wrong = _assert_error(await http["operator"].post(TICKET, json={**body, "customer_id": other["customer_id"]}),
                          422, "INVALID_REQUEST")  # fmt: skip
    assert wrong["error"]["details"][0]["field"] == "order_id"
    _assert_error(await http["operator"].post(TICKET, json={**body, "order_id": "NO-SUCH-ORDER"}), 404,
                  "DATA_NOT_FOUND")  # fmt: skip


# -- loyalty --------------------------------------------------------------------------------------------------


async def test_viewer_reads_but_cannot_earn(http: Clients, sql: psycopg.Connection[Any]) -> None:
    [cid] = _customers(sql, 1, 1)
    before = _points(sql, cid)
    read = await http["viewer"].post(LOYALTY, json={"action": "balance", "customer_id": cid})
    assert read.status_code == 200, read.text
    assert read.json()["data"]["loyalty_points"] == before
    for action in ("earn", "redeem"):
        denied = await http["viewer"].post(LOYALTY, json={"action": action, "customer_id": cid, "points": 5})
        assert "needs the operator role" in _assert_error(denied, 403, "FORBIDDEN")["detail"]
    assert _points(sql, cid) == before and _ledger(sql, cid) == []


async def test_earn_then_redeem_balance_equals_sql(http: Clients, sql: psycopg.Connection[Any]) -> None:
    [cid] = _customers(sql, 1, 2)
    before = _points(sql, cid)
    earned = await http["operator"].post(LOYALTY, json={"action": "earn", "customer_id": cid, "points": 30,
                                                        "reason": "birthday bonus"})  # fmt: skip
    assert earned.status_code == 200, earned.text
    assert earned.json()["data"]["loyalty_points"] == before + 30 == _points(sql, cid)
    redeemed = await http["operator"].post(LOYALTY, json={"action": "redeem", "customer_id": cid, "points": 20})
    assert redeemed.status_code == 200, redeemed.text
    change = redeemed.json()["data"]["transaction"]
    assert (change["balance_before"], change["delta"], change["balance_after"]) == (before + 30, -20, before + 10)
    assert _points(sql, cid) == before + 10 == redeemed.json()["data"]["loyalty_points"]
    ledger = _ledger(sql, cid)
    assert [(r["kind"], r["delta"], r["balance_after"], r["actor"]) for r in ledger] == [
        ("earn", 30, before + 30, "operator-1"), ("redeem", -20, before + 10, "operator-1")]  # fmt: skip
    assert ledger[0]["reason"] == "birthday bonus"
    for answer in (earned, redeemed):
        [audit] = _audit(sql, answer.json()["task_id"])
        assert (audit["actor"], audit["endpoint"], audit["event"]) == ("operator-1", LOYALTY, "TASK_COMPLETED")
    read = (await http["viewer"].post(LOYALTY, json={"action": "balance", "customer_id": cid})).json()["data"]
    assert read["loyalty_points"] == before + 10
    assert [t["transaction_id"] for t in read["recent_transactions"]] == [r["transaction_id"] for r in ledger[::-1]]


async def test_redeem_beyond_the_balance_is_409_and_writes_nothing(http: Clients,
                                                                   sql: psycopg.Connection[Any]) -> None:  # fmt: skip
    [cid] = _customers(sql, 1, 3)
    before = _points(sql, cid)
    response = await http["operator"].post(LOYALTY, json={"action": "redeem", "customer_id": cid,
                                                           "points": before + 1})  # fmt: skip
    body = _assert_error(response, 409, "INSUFFICIENT_POINTS")
    assert body["error"]["details"] == {"field": "points", "balance": before, "points": before + 1}
    assert body["error"]["message"].startswith("points: ")
    assert _points(sql, cid) == before and _ledger(sql, cid) == []
    assert [a["event"] for a in _audit(sql, body["task_id"])] == ["TASK_FAILED"]


async def test_racing_redeems_lose_no_write(http: Clients, sql: psycopg.Connection[Any]) -> None:
    [cid] = _customers(sql, 1, 4)
    sql.execute("UPDATE customers SET loyalty_points = 50 WHERE customer_id = %s", (cid,))
    body = {"action": "redeem", "customer_id": cid, "points": 10, "reason": "voucher"}
    answers = await asyncio.gather(*(http["operator"].post(LOYALTY, json=body) for _ in range(10)))
    assert sorted(a.status_code for a in answers) == [200] * 5 + [409] * 5, [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 409):
        assert _assert_error(refused, 409, "INSUFFICIENT_POINTS")["error"]["details"]["balance"] == 0
    assert _points(sql, cid) == 0
    ledger = _ledger(sql, cid)
    assert len(ledger) == 5
    assert [(r["balance_before"], r["balance_after"]) for r in ledger] == [(50, 40), (40, 30), (30, 20), (20, 10),
                                                                            (10, 0)]  # fmt: skip


async def test_a_retried_loyalty_key_changes_nothing_twice(http: Clients, sql: psycopg.Connection[Any]) -> None:
    [cid] = _customers(sql, 1, 5)
    before = _points(sql, cid)
    body = {"action": "earn", "customer_id": cid, "points": 7, "idempotency_key": "loyalty-test-1"}
    first, again = [await http["operator"].post(LOYALTY, json=body) for _ in range(2)]
    assert first.status_code == again.status_code == 200, again.text
    assert first.json()["data"]["replayed"] is False and again.json()["data"]["replayed"] is True
    assert again.json()["data"]["transaction"] == first.json()["data"]["transaction"]
    assert _points(sql, cid) == before + 7 and len(_ledger(sql, cid)) == 1
    assert [a["event"] for a in _audit(sql, again.json()["task_id"])] == ["TASK_REPLAYED"]
    reused = await http["operator"].post(LOYALTY, json={**body, "points": 8})
    _assert_error(reused, 409, "IDEMPOTENCY_KEY_REUSED")
    assert _points(sql, cid) == before + 7 and len(_ledger(sql, cid)) == 1


# -- validation -----------------------------------------------------------------------------------------------


async def test_bad_input_names_the_field(http: Clients) -> None:
    cases = [
        (PROFILE, {"action": "query", "customer_id": 1}, "action"),
        (PROFILE, {"action": "query_customer"}, "customer_id"),
        (PROFILE, {"customer_id": True}, "customer_id"),
        (PROFILE, {"customer_id": 1.5}, "customer_id"),
        (PROFILE, {"customer_id": 1, "colour": "red"}, "colour"),
        (TICKET, {"action": "loyalty", "customer_id": 1, "subject": "s", "description": "d"}, "action"),
        (TICKET, {"customer_id": 1, "subject": "s", "description": "d", "priority": "urgent"}, "priority"),
        (TICKET, {"customer_id": 1, "subject": "s" * 201, "description": "d"}, "subject"),
        (TICKET, {"customer_id": 1, "subject": "s"}, "description"),
        (TICKET, {"customer_id": 1, "subject": "   ", "description": "d"}, "subject"),
        (TICKET, {"customer_id": 1, "subject": "s", "description": "d", "idempotency_key": "a b"}, "idempotency_key"),
        (LOYALTY, {"customer_id": 1}, "action"),
        (LOYALTY, {"action": "spend", "customer_id": 1, "points": 5}, "action"),
        (LOYALTY, {"action": "earn", "customer_id": 1}, "points"),
        (LOYALTY, {"action": "earn", "customer_id": 1, "points": 0}, "points"),
        (LOYALTY, {"action": "earn", "customer_id": 1, "points": -5}, "points"),
        (LOYALTY, {"action": "earn", "customer_id": 1, "points": 1.5}, "points"),
        (LOYALTY, {"action": "earn", "customer_id": 1, "points": "5"}, "points"),
        (LOYALTY, {"action": "earn", "customer_id": 1, "points": 10**7}, "points"),
        (LOYALTY, {"action": "balance", "customer_id": 1, "points": 5}, "points"),
        (LOYALTY, {"action": "earn", "customer_id": 1, "points": 5, "reason": "r" * 501}, "reason"),
    ]
    for path, body, field in cases:
        response = await http["operator"].post(path, json=body)
        error = _assert_error(response, 422, response.json()["error"]["code"])["error"]
        assert error["code"] in ("VALIDATION_ERROR", "INVALID_REQUEST"), error
        assert any(p["field"] == field for p in error["details"]), (path, body, error)
        assert field in error["message"], (path, body, error)
