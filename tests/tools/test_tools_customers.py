"""Customer tools on the small seed (seed 7): profile figures against SQL aggregates, rankings against SQL,
segments covering every customer with orders, recommendations, and the analytics cache (computed once, again
after the data changes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from ml.errors import InputError
from server.db import connect
from server.seed import seed_database
from tools import customers
from tools.customers import customer_profile, customer_segments, recommendations, top_customers


@pytest.fixture(scope="module")
def seeded(database_url: str) -> str:
    with connect(database_url) as conn:
        seed_database(conn, seed=7, scale="small")
    customers.clear_cache()
    return database_url


pytestmark = pytest.mark.usefixtures("seeded", "tools")


@pytest.fixture
def computations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts how often the analytics are computed from the database."""
    calls: list[int] = []
    original = customers._compute

    def counted(*args: Any) -> Any:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(customers, "_compute", counted)
    yield calls


def _one(db: psycopg.Connection[Any], sql: Any, params: Any = None) -> dict[str, Any]:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return row


async def test_profile_figures_equal_sql(db: psycopg.Connection[Any]) -> None:
    busiest = _one(db, "SELECT customer_id FROM orders GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
    refunded = _one(db, "SELECT min(customer_id) AS customer_id FROM orders WHERE payment_status = 'refunded'")
    once = _one(db, "SELECT min(customer_id) AS customer_id FROM (SELECT customer_id FROM orders GROUP BY 1"
                    " HAVING count(*) = 1) t")  # fmt: skip
    names = (await customer_segments()).segments
    for cid in {busiest["customer_id"], refunded["customer_id"], once["customer_id"]}:
        expected = _one(
            db,
            "SELECT count(*) AS orders, count(*) FILTER (WHERE payment_status = 'refunded') AS refunded,"
            " sum(order_value) FILTER (WHERE payment_status <> 'refunded') AS spent, max(order_date) AS last,"
            " (SELECT loyalty_points FROM customers WHERE customer_id = %(c)s) AS points,"
            " (SELECT as_of FROM dataset_info) AS as_of"
            " FROM orders WHERE customer_id = %(c)s",
            {"c": cid},
        )
        profile = await customer_profile(cid)
        assert profile is not None and profile.customer_id == cid
        assert profile.orders == expected["orders"] and profile.refunded_orders == expected["refunded"]
        assert profile.total_spent == pytest.approx(float(expected["spent"] or 0), abs=0.005)
        assert profile.last_order == expected["last"] and profile.loyalty_points == expected["points"]
        assert profile.as_of == expected["as_of"]
        assert profile.recency_days == (expected["as_of"] - expected["last"]).days
        assert profile.segment in {s.name for s in names}
        assert profile.clv is not None and profile.clv >= 0 and profile.clv_horizon_days == 365
        assert profile.p_active is not None and 0 < profile.p_active <= 0.9
        assert isinstance(profile.churn_risk, bool) and profile.churn_reason
        assert profile.name and "@" in profile.email and str(expected["as_of"]) in profile.how


async def test_unknown_customer() -> None:
    assert await customer_profile(987654) is None
    with pytest.raises(InputError) as err:
        await recommendations(987654, 3)
    assert err.value.field == "customer_id"


async def test_customer_without_orders(db: psycopg.Connection[Any]) -> None:
    db.execute(
        "INSERT INTO customers (customer_id, name, email, gender, city, segment, prior_purchases, rating, care_calls,"
        " loyalty_points, created_at) VALUES (5001, 'Nora Quinn', 'nora.quinn.5001@example.com', 'F', 'Lyon', 'new',"
        " 0, 4, 0, 0, '2026-10-30') ON CONFLICT (customer_id) DO NOTHING"
    )
    profile = await customer_profile(5001)
    assert profile is not None and profile.orders == 0 and profile.total_spent == 0.0 and profile.last_order is None
    assert profile.segment is None and profile.clv is None and profile.churn_risk is None
    recs = await recommendations(5001, 2)
    assert len(recs) == 2 and {r.source for r in recs} == {"popular"} and "popularity" in recs[0].how


async def test_top_customers_by_loyalty_equal_sql(db: psycopg.Connection[Any]) -> None:
    expected = db.execute(
        "SELECT customer_id, loyalty_points FROM customers ORDER BY loyalty_points DESC, customer_id LIMIT %s", (7,)
    ).fetchall()
    top = await top_customers("loyalty_points", 7, None)
    assert [(t.customer_id, int(t.value)) for t in top] == [(r["customer_id"], r["loyalty_points"]) for r in expected]
    assert [t.rank for t in top] == list(range(1, 8)) and "loyalty points" in top[0].how


async def test_top_customers_by_order_figures_equal_sql(db: psycopg.Connection[Any]) -> None:
    by_frequency = db.execute(
        "SELECT customer_id, count(*) AS n FROM orders GROUP BY 1 ORDER BY n DESC, customer_id LIMIT 5"
    ).fetchall()
    top = await top_customers("frequency", 5, None)
    assert [(t.customer_id, t.value) for t in top] == [(r["customer_id"], r["n"]) for r in by_frequency]
    by_spend = db.execute(
        "SELECT customer_id, coalesce(sum(order_value) FILTER (WHERE payment_status <> 'refunded'), 0) AS spent"
        " FROM orders GROUP BY 1 ORDER BY spent DESC, customer_id LIMIT 5"
    ).fetchall()
    top = await top_customers("monetary", 5, None)
    assert [t.customer_id for t in top] == [r["customer_id"] for r in by_spend]
    assert [t.value for t in top] == pytest.approx([float(r["spent"]) for r in by_spend], abs=0.005)
    by_clv = await top_customers("clv", 10, None)
    assert [t.value for t in by_clv] == sorted((t.value for t in by_clv), reverse=True)
    assert all(t.clv == t.value for t in by_clv)


async def test_top_customers_within_a_segment() -> None:
    segments = await customer_segments()
    name = segments.segments[0].name
    top = await top_customers("loyalty_points", 100, name)
    assert len(top) == segments.segments[0].size and {t.segment for t in top} == {name}
    assert [t.value for t in top] == sorted((t.value for t in top), reverse=True)
    with pytest.raises(InputError) as err:
        await top_customers("clv", 5, "whales")
    assert err.value.field == "segment" and err.value.allowed == [s.name for s in segments.segments]
    with pytest.raises(InputError) as by:
        await top_customers("age", 5, None)  # type: ignore[arg-type]
    assert by.value.field == "by"


async def test_segments_cover_every_customer_with_orders(db: psycopg.Connection[Any]) -> None:
    with_orders = _one(db, "SELECT count(DISTINCT customer_id) AS n FROM orders")["n"]
    result = await customer_segments()
    assert result.k == 4 and len(result.segments) == 4 and result.customers_with_orders == with_orders
    assert sum(s.size for s in result.segments) == with_orders
    assert result.silhouette is not None and 0 < result.silhouette < 1
    assert "K-Means (k=4, seed=7" in result.how and str(result.as_of) in result.how


async def test_recommendations_exclude_what_was_bought(db: psycopg.Connection[Any]) -> None:
    cid = _one(db, "SELECT min(customer_id) AS c FROM orders")["c"]
    bought = {r["sku"] for r in db.execute("SELECT DISTINCT sku FROM orders WHERE customer_id = %s", (cid,))}
    recs = await recommendations(cid, 3)
    assert 0 < len(recs) <= 3 and not {r.sku for r in recs} & bought
    assert all(r.reason and r.name for r in recs) and "collaborative filtering" in recs[0].how


async def test_concurrent_first_calls_compute_once(computations: list[int]) -> None:
    customers.clear_cache()
    results = await asyncio.gather(customer_segments(), customer_segments(), top_customers("clv", 3, None))
    assert len(computations) == 1 and results[0] == results[1]
    await customer_segments()
    assert len(computations) == 1


async def test_cache_recomputes_after_the_data_changes(
    computations: list[int], seed_order: Any, db: psycopg.Connection[Any]
) -> None:
    before = await customer_segments()
    computed = len(computations)
    order_id = seed_order(order_value=250, order_status="delivered")
    cid = _one(db, "SELECT customer_id FROM orders WHERE order_id = %s", (order_id,))["customer_id"]
    after = await customer_segments()
    assert len(computations) == computed + 1
    assert sum(s.size for s in after.segments) == sum(s.size for s in before.segments) + 1
    profile = await customer_profile(cid)
    assert profile is not None and profile.orders == 1 and profile.total_spent == 250.0 and profile.segment
    assert len(computations) == computed + 1  # unchanged data: the cached analytics again
    db.execute("UPDATE orders SET payment_status = 'refunded' WHERE order_id = %s", (order_id,))
    refunded = await customer_profile(cid)
    assert len(computations) == computed + 2 and refunded is not None and refunded.total_spent == 0.0
