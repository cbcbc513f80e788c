"""The compliance check over HTTP, against the policy file's numbers: a price change above the limit (up or down), a
price below the pricing rule's margin, a transaction above the review amount; limits themselves pass."""

from __future__ import annotations

from typing import Any

import psycopg
from conftest import Clients

from rag.policy import get_policy

CHECK = "/api/audit/compliance-check"


async def _check(http: Clients, **check: Any) -> dict[str, Any]:
    response = await http["viewer"].post(CHECK, json={"action": "compliance_check", "check": check})
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


async def test_price_changes_against_the_policy_limit(http: Clients) -> None:
    limit = get_policy().compliance.max_price_change_pct
    assert limit == 50
    # Tidewell Espresso Beans: catalog 2.00, cost 1.18; beverages rule: 10 % margin -> floor 1.32
    at_limit = await _check(http, type="price_change", sku=1002, old_price=2.0, new_price=2.0 * (1 + limit / 100))
    assert at_limit["passed"] and at_limit["violations"] == [] and at_limit["action"]["change_percent"] == limit
    over = await _check(http, type="price_change", sku=1002, new_price=3.02)
    assert not over["passed"] and over["action"]["old_price"] == 2.0
    assert over["violations"] == [{"rule": "compliance.max_price_change_pct", "limit": limit, "value": 51.0,
                                   "message": "the price changes by 51 % (from 2.00 to 3.02), more than the 50 % "
                                              "allowed without a review"}]  # fmt: skip
    assert over["citation"] == "policy:planning#compliance-checks"


async def test_a_cut_below_the_margin_breaks_two_rules(http: Clients, sql: psycopg.Connection[Any]) -> None:
    row = sql.execute("SELECT unit_cost, min_margin FROM products p JOIN pricing_rules r ON r.category = p.category "
                      "WHERE p.sku = 1002").fetchone()  # fmt: skip
    assert row is not None
    floor = float(row["unit_cost"]) / (1 - float(row["min_margin"]))
    data = await _check(http, type="price_change", sku=1002, new_price=0.9)
    assert [v["rule"] for v in data["violations"]] == ["compliance.max_price_change_pct", "pricing_rule.min_margin"]
    margin = data["violations"][1]
    assert margin["limit"] == round(floor + 0.005, 2) == 1.32 and margin["value"] == 0.9
    assert data["violations"][0]["value"] == 55.0


async def test_transactions_above_the_review_amount(http: Clients) -> None:
    review = get_policy().compliance.review_amount_usd
    assert review == 1000
    assert (await _check(http, type="transaction", amount=review))["passed"]
    data = await _check(http, type="transaction", amount=review + 0.01)
    message = "the amount 1,000.01 is above 1,000.00: a person must review it"
    assert data["violations"] == [
        {"rule": "compliance.review_amount_usd", "limit": review, "value": 1000.01, "message": message}
    ]


async def test_bad_checks_name_the_field(http: Clients) -> None:
    cases = [
        ({"action": "compliance_check", "check": {"type": "refund", "amount": 5}}, "check"),
        ({"action": "compliance_check", "check": {"type": "transaction", "amount": -1}}, "check.transaction.amount"),
        ({"action": "compliance_check", "check": {"type": "price_change", "sku": 1002}},
         "check.price_change.new_price"),
        ({"action": "compliance_check", "check": {"type": "price_change", "sku": 1002, "new_price": 3, "old_price": 0}},
         "check.price_change.old_price"),
        ({"action": "audit", "check": {"type": "transaction", "amount": 5}}, "action"),
    ]  # fmt: skip
    for body, field in cases:
        response = await http["viewer"].post(CHECK, json=body)
        assert response.status_code == 422, (body, response.text)
        assert any(p["field"] == field for p in response.json()["error"]["details"]), (body, response.json())
    unknown = await http["viewer"].post(CHECK, json={"check": {"type": "price_change", "sku": 99, "new_price": 3}})
    assert unknown.status_code == 404 and unknown.json()["error"]["message"].startswith("check.sku: ")
