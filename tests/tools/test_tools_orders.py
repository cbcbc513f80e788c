"""Order facts and customer history over the real tables: seeded orders, orders known only to the scoring
pipeline (external ids, text customer refs), predictions and deviations, what the ledgers already hold."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tools.orders import OrderNotFound, customer_history, get_order, require_order

pytestmark = pytest.mark.usefixtures("tools")


async def test_seeded_order_facts(seed_order, now) -> None:
    order_id = seed_order(days_late=4, prediction={"delay_probability": 0.62, "severity": "warning"})
    facts = await get_order(order_id, now=now)
    assert facts is not None and facts.known and facts.customer_id is not None
    assert facts.customer_ref == str(facts.customer_id)
    assert facts.amount_paid == facts.order_value == 190.0  # the seed's order_value is net of the discount
    assert facts.weight_kg == 5.0 and facts.days_late == 4 and facts.as_of == now.date()
    assert facts.delay_probability == 0.62 and facts.severity == "warning" and facts.model_version == "delay-test"
    assert facts.top_features and facts.top_features[0]["feature"] == "weight_in_gms"
    assert facts.block_backlog_hours is not None and not facts.delivered and facts.shipped


async def test_days_late_counts_to_delivery_or_today(seed_order, now) -> None:
    promised = now.date() - timedelta(days=10)
    delivered = seed_order(days_late=10, delivery_date=promised + timedelta(days=3), order_status="delivered")
    facts = await require_order(delivered, now=now)
    assert facts.days_late == 3 and facts.delivered
    early = seed_order(days_late=-2)
    assert (await require_order(early, now=now)).days_late == 0


async def test_deviation_severity_wins_over_the_prediction(seed_order, now) -> None:
    order_id = seed_order(prediction={"delay_probability": 0.55, "severity": "warning"}, deviation="critical")
    facts = await require_order(order_id, now=now)
    assert facts.severity == "critical" and facts.deviation_id and facts.deviation_status == "open"


async def test_external_order_with_a_text_customer_ref(external_order, now) -> None:
    order_id = external_order(customer_ref="C00123", prediction={}, cost_of_product="250", discount_offered="20")
    facts = await require_order(order_id, now=now)
    assert not facts.known and facts.customer_ref == "C00123" and facts.customer_id is None
    assert facts.cost_of_product == 250.0 and facts.amount_paid == 200.0  # no order_value: cost net of discount
    assert facts.days_late == 2 and facts.severity == "critical"
    given = external_order(order_value=123.45)
    assert (await require_order(given, now=now)).amount_paid == 123.45


async def test_unknown_order(now) -> None:
    assert await get_order("NOPE-1", now=now) is None
    with pytest.raises(OrderNotFound, match="NOPE-1"):
        await require_order("NOPE-1", now=now)


async def test_customer_history_counts(seed_order, db, now) -> None:
    order_id = seed_order(customer_care_calls=5)
    facts = await require_order(order_id, now=now)
    other = seed_order(customer_id=facts.customer_id, deviation="warning")
    db.execute("UPDATE deviations SET status = 'resolved' WHERE order_id = %s", (other,))
    seed_order(customer_id=facts.customer_id, deviation="info")
    ref = facts.customer_ref
    db.execute(
        "INSERT INTO notifications (idempotency_key, customer_ref, order_id, channel, template, kind, body, actor,"
        " policy_rule, send_after) VALUES ('h1', %s, %s, 'email', 'delay-apology', 'apology', 'sorry', 'agent:t',"
        " 'r', %s), ('h2', %s, %s, 'email', 'delay-apology', 'apology', 'sorry', 'agent:t', 'r', %s)",
        (ref, order_id, now - timedelta(hours=47), ref, other, now - timedelta(hours=49)),
    )
    db.execute(
        "INSERT INTO refunds (idempotency_key, order_id, customer_ref, amount, reason, actor, policy_rule)"
        " VALUES ('h3', %s, %s, 19, 'late', 'agent:t', 'r')",
        (order_id, ref),
    )
    history = await customer_history(ref, order_id, now=now)
    assert history.apologies_in_window == 1 and history.window_hours == 48
    assert history.compensations_on_order == 1 and history.compensation_usd_on_order == 19.0
    assert history.previous_deviations == 2 and history.resolved_deviations == 1
    assert history.care_calls == 5 and history.compensation_requests_in_window == 1
    later = await customer_history(ref, order_id, now=now + timedelta(hours=2))
    assert later.apologies_in_window == 0


async def test_customer_history_of_an_external_customer(external_order, now) -> None:
    order_id = external_order(customer_ref="C77777")
    history = await customer_history("C77777", order_id, now=now)
    assert history.apologies_in_window == 0 and history.previous_deviations == 0
    assert (await customer_history(None, order_id, now=now)).customer_ref is None


async def test_seeded_orders_are_counted_on_the_dataset_day(seed_order, external_order, db, now) -> None:
    order_id, upstream = seed_order(days_late=4), external_order()
    snapshot = now.date() - timedelta(days=3)
    db.execute(
        "INSERT INTO dataset_info (seed, scale, as_of, generator, row_counts) VALUES (7, 'small', %s, 'test', '{}')",
        (snapshot,),
    )
    try:
        facts = await require_order(order_id, now=now + timedelta(days=60))
        assert facts.as_of == snapshot and facts.days_late == 1
        assert (await require_order(upstream, now=now)).as_of == now.date()  # live orders count to now
    finally:
        db.execute("DELETE FROM dataset_info")


async def test_external_amount_paid_counts_the_quantity(external_order, now) -> None:
    order_id = external_order(cost_of_product=100, discount_offered=10, quantity=3)
    assert (await require_order(order_id, now=now)).amount_paid == 270.0
