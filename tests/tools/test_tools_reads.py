"""The read tools of the specialists: carrier status and SLA claims, upgrade options with fees, warehouse state,
refund eligibility (the same numbers the guardrail judges by) and escalation routing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tools.escalation import recommend_escalation
from tools.orders import OrderNotFound
from tools.payment import check_refund_eligibility
from tools.shipment import check_carrier_status, check_warehouse, upgrade_options

pytestmark = pytest.mark.usefixtures("tools")


async def test_carrier_status_from_the_selection_matrix(seed_order, policy, now) -> None:
    order_id = seed_order(days_late=4)
    status = await check_carrier_status(order_id, now=now)
    expected = policy.carrier_for("Road", "medium")
    assert status.carrier_id == expected.id and not status.carrier_matched  # the seed's carriers are made up
    assert status.on_time_target_pct == expected.on_time_target_pct and status.days_late == 4
    assert status.expected_delivery is not None and status.expected_delivery > status.promised_delivery_date


async def test_claim_eligibility_boundary(seed_order, policy, now) -> None:
    claim_after = policy.carrier_selection.claim_after_days_late
    carrier = policy.carrier("trailway")
    shipped = now.date() - timedelta(days=carrier.transit_days + claim_after)
    at = await check_carrier_status(seed_order(carrier_name="Trailway", ship_date=shipped), now=now)
    assert at.carrier_matched and at.carrier_days_late == claim_after and at.claim_eligible
    before = await check_carrier_status(
        seed_order(carrier_name="trailway", ship_date=shipped + timedelta(days=1)), now=now
    )
    assert before.carrier_days_late == claim_after - 1 and not before.claim_eligible


async def test_upgrade_options_with_fees(seed_order, policy, now) -> None:
    order_id = seed_order(weight_in_gms=5000, prediction={"severity": "critical"})
    options = await upgrade_options(order_id, now=now)
    path = next(p for p in policy.shipping.upgrade.paths if p.from_mode == "Road" and p.to_mode == "Flight")
    assert [o["to_mode"] for o in options.options] == ["Flight"]
    assert options.options[0]["fee"] == path.cost_usd(5.0)
    assert options.options[0]["required_role"] == policy.approval.required_role("shipping_upgrade", path.cost_usd(5.0))
    info = await upgrade_options(seed_order(prediction={"severity": "info"}), now=now)
    assert info.options == () and info.reasons


async def test_warehouse_status(seed_order, policy, now) -> None:
    status = await check_warehouse(seed_order(ship_date=None, order_status="processing"), now=now)
    assert status.block == "B" and status.processing_hours == policy.warehouses.blocks["B"].processing_hours
    assert status.backlog_hours is not None and not status.transfer_possible  # a tiny test backlog


async def test_refund_eligibility_agrees_with_the_policy(seed_order, policy, now) -> None:
    order_id = seed_order(days_late=4, order_value=400)
    check = await check_refund_eligibility(order_id, now=now)
    tier = policy.refunds.tier_for(4)
    assert tier is not None and check.eligible and check.tier == tier.name
    assert check.max_amount == round(400 * tier.refund_pct / 100, 2)
    assert check.max_store_credit == round(check.max_amount * (1 + policy.store_credit.bonus_pct / 100), 2)
    assert check.required_role_for_max == policy.approval.required_role("refund", check.max_amount)
    pending = await check_refund_eligibility(seed_order(payment_status="pending"), now=now)
    assert not pending.eligible and pending.max_amount == 0 and pending.reasons


async def test_goodwill_offer_for_a_critical_order_in_transit(seed_order, policy, now) -> None:
    order_id = seed_order(days_late=-1, prediction={"severity": "critical"})
    check = await check_refund_eligibility(order_id, now=now)
    goodwill = policy.store_credit.goodwill
    assert not check.eligible and check.goodwill_max == round(min(190 * goodwill.value_pct / 100, goodwill.max_usd), 2)


async def test_escalation_routes(seed_order, db, policy, now) -> None:
    calls = await recommend_escalation(
        seed_order(customer_care_calls=policy.escalation.care_calls_over + 1, prediction={"severity": "critical"}),
        now=now,
    )
    assert calls.team == policy.escalation.routes["care_calls"] and calls.priority == "P1"
    target = policy.escalation.response_targets["P1"]
    assert (calls.acknowledge_hours, calls.resolve_hours) == (target.acknowledge_hours, target.resolve_hours)
    over = policy.severity.escalators.warehouse_critical_count_over
    for _ in range(over + 1):
        seed_order(warehouse_block="D", deviation="critical")
    cluster = await recommend_escalation(seed_order(warehouse_block="D", prediction={"severity": "warning"}), now=now)
    assert cluster.block_critical_count == over + 1 and cluster.team == policy.escalation.routes["warehouse_cluster"]
    assert cluster.priority == "P2"


async def test_reads_name_an_unknown_order(now) -> None:
    with pytest.raises(OrderNotFound, match="order_id"):
        await check_carrier_status("NOPE-2", now=now)
