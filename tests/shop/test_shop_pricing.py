"""Pricing over HTTP: numbers worked out by hand from the seeded products, pricing rules and promotions (a discount
capped by the rule's largest discount and by its minimum margin included), recommendations inside the bounds that
change nothing, and requests refused naming the field."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from conftest import Clients

CALCULATE = "/api/pricing/calculate"
RECOMMEND = "/api/pricing/recommend"


def _promotion(sql: psycopg.Connection[Any], store: int, sku: int, discount: float, first: str, last: str) -> None:
    sql.execute("INSERT INTO promotions (idempotency_key, store_id, sku, discount, starts_on, ends_on, source, actor, "
                "policy_rule) VALUES (%s, %s, %s, %s, %s, %s, 'plan', 'test', 'test') ON CONFLICT DO NOTHING",
                (f"shop-test-{store}-{sku}-{first}", store, sku, discount, first, last))  # fmt: skip


async def _price(http: Clients, **body: Any) -> dict[str, Any]:
    response = await http["viewer"].post(CALCULATE, json={"action": "calculate", **body})
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


async def test_a_seeded_promotion_within_its_rule(http: Clients, sql: psycopg.Connection[Any]) -> None:
    # Kestrel Soundbar: price 57.49, cost 43.52; store 1 runs 20 % off from 23 June to 4 July 2026; the electronics
    # rule (5) allows 20 % and a 5 % margin: floor 43.52 / 0.95 = 45.81, so 57.49 x 0.8 = 45.992 -> 45.99 stands.
    row = sql.execute("SELECT discount FROM promotions WHERE store_id = 1 AND sku = 1005 AND starts_on <= "
                      "'2026-06-25' AND ends_on >= '2026-06-25'").fetchone()  # fmt: skip
    assert row is not None and float(row["discount"]) == 0.2
    data = await _price(http, sku=1005, quantity=10, store_id=1, on="2026-06-25")
    assert (data["base_price"], data["discount_percent"], data["unit_price_after_discount"]) == (57.49, 20.0, 45.99)
    assert (data["total_cost"], data["savings"], data["applicable_rules"]) == (459.9, 115.0, [5])
    assert data["limited_by"] is None and data["promotion"]["discount_percent"] == 20.0
    assert data["min_price"] == 45.82


async def test_no_store_or_no_promotion_is_the_base_price(http: Clients, sql: psycopg.Connection[Any]) -> None:
    data = await _price(http, sku="1005", quantity=2, on="2026-06-25")
    assert (data["discount_percent"], data["unit_price_after_discount"], data["total_cost"], data["savings"]) == (
        0.0, 57.49, 114.98, 0.0)  # fmt: skip
    assert data["promotion"] is None and "no store given" in data["explanation"]
    assert sql.execute("SELECT count(*) AS n FROM promotions WHERE store_id = 1 AND sku = 1005 AND starts_on <= "
                       "'2026-06-10' AND ends_on >= '2026-06-10'").fetchone() == {"n": 0}  # fmt: skip
    quiet = await _price(http, sku=1005, quantity=1, store_id=1, on="2026-06-10")
    assert quiet["discount_percent"] == 0.0 and quiet["total_cost"] == 57.49


async def test_the_sku_rule_caps_the_discount(http: Clients, sql: psycopg.Connection[Any]) -> None:
    # Aldermoor Toothpaste: 12.99, cost 6.65; its premium sku rule (10) overrides personal care (4): at most 15 %
    # and a 39 % margin (floor 6.65 / 0.61 = 10.90). A 25 % promotion is cut to 15 %: 12.99 x 0.85 = 11.0415 -> 11.04.
    _promotion(sql, 2, 1004, 0.25, "2030-01-10", "2030-01-12")
    data = await _price(http, sku=1004, quantity=3, store_id=2, on="2030-01-11")
    assert (data["discount_percent"], data["unit_price_after_discount"], data["total_cost"], data["savings"]) == (
        15.0, 11.04, 33.12, 5.85)  # fmt: skip
    assert data["applicable_rules"] == [10] and data["limited_by"] == "max_discount"
    assert data["pricing_rule"]["rule_type"] == "premium" and data["promotion"]["discount_percent"] == 25.0


async def test_the_minimum_margin_caps_the_discount(http: Clients, sql: psycopg.Connection[Any]) -> None:
    # Tidewell Paper Towels: 11.99, cost 8.82; household rule (3): at most 30 %, margin 12 % -> floor 8.82 / 0.88 =
    # 10.0227. A 25 % promotion may only take 1 - 10.0227 / 11.99 = 16.41 %; 10.0227 rounds up to 10.03.
    _promotion(sql, 1, 1003, 0.25, "2030-02-01", "2030-02-03")
    data = await _price(http, sku=1003, quantity=2, store_id=1, on="2030-02-02")
    assert (data["discount_percent"], data["unit_price_after_discount"], data["total_cost"], data["savings"]) == (
        16.41, 10.03, 20.06, 3.92)  # fmt: skip
    assert data["limited_by"] == "min_margin" and data["applicable_rules"] == [3]
    assert (data["unit_price_after_discount"] - 8.82) / data["unit_price_after_discount"] >= 0.12


def _counts(sql: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = sql.execute("SELECT (SELECT count(*) FROM promotions) AS promotions, (SELECT count(*) FROM audit_log) AS "
                      "audit, (SELECT count(*) FROM inventory_adjustments) AS adjustments, (SELECT sum(on_hand + "
                      "on_order * 7 + version * 13) FROM inventory) AS stock, (SELECT count(*) FROM pricing_rules) AS "
                      "rules").fetchone()  # fmt: skip
    assert row is not None
    return tuple(row.values())


@pytest.mark.parametrize(("sku", "store"), [(1006, 3), (1002, None), (1008, 1)])
async def test_recommendations_stay_in_bounds_and_write_nothing(
    http: Clients, sql: psycopg.Connection[Any], sku: int, store: int | None
) -> None:
    before = _counts(sql)
    response = await http["viewer"].post(RECOMMEND, json={"action": "recommend", "sku": sku, "store_id": store})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    bounds = data["bounds"]
    assert 0 <= data["recommended_discount_percent"] <= bounds["max_discount_percent"] <= 30
    assert data["recommended_price"] >= bounds["min_price"] and bounds["min_margin_percent"] >= 15
    assert data["reason"] and data["elasticity"]["source"] in ("item", "pooled", "prior")
    if data["recommended_discount_percent"] > 0:
        assert data["expected_effect"]["net_benefit"] > 0 and data["approval_role"] in ("approver", "admin")
    else:
        assert data["recommended_price"] == data["current_price"] and data["approval_role"] is None
    assert _counts(sql) == before


async def test_overstock_gets_a_discount_that_pays(http: Clients, sql: psycopg.Connection[Any]) -> None:
    sql.execute("UPDATE inventory SET on_hand = 4000 WHERE store_id = 2 AND sku = 1007")
    data = (await http["viewer"].post(RECOMMEND, json={"sku": 1007, "store_id": 2})).json()["data"]
    assert data["stock_position"] >= 4000 and data["reason"].startswith("excess stock")
    if data["recommended_discount_percent"] > 0:
        effect = data["expected_effect"]
        assert effect["net_benefit"] > 0 and effect["margin_percent_after"] >= data["bounds"]["min_margin_percent"]


async def test_bad_pricing_requests_name_the_field(http: Clients) -> None:
    cases = [
        (CALCULATE, {"sku": 1001, "quantity": 0}, "quantity"),
        (CALCULATE, {"action": "recommend", "sku": 1001}, "action"),
        (CALCULATE, {"sku": 1001, "on": "yesterday"}, "on"),
        (CALCULATE, {"quantity": 1}, "sku"),
        (RECOMMEND, {"action": "calculate", "sku": 1001}, "action"),
        (RECOMMEND, {"sku": 2.5}, "sku"),
    ]
    for path, body, field in cases:
        response = await http["viewer"].post(path, json=body)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert response.json()["success"] is False and error["code"] == "VALIDATION_ERROR"
        assert any(p["field"] == field for p in error["details"]), (body, error)
    missing = await http["viewer"].post(CALCULATE, json={"sku": 1001, "store_id": 77})
    assert missing.status_code == 404 and missing.json()["error"]["details"]["available_store_ids"] == [1, 2, 3]
    unknown = await http["viewer"].post(RECOMMEND, json={"sku": "SKU123"})
    assert unknown.status_code == 404 and unknown.json()["error"]["message"] == "sku: SKU123 not found in the catalog"
