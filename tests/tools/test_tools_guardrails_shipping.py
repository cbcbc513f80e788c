"""Guardrails for shipment actions: upgrade paths (weight, severity, fee, one per order), rescheduling and
carrier reassignment, warehouse transfers; each rule at its boundary, numbers from the policy file."""

from __future__ import annotations

import pytest

from rag.policy import Policy


def _path(policy: Policy, from_mode: str, to_mode: str):
    return next(p for p in policy.shipping.upgrade.paths if p.from_mode == from_mode and p.to_mode == to_mode)


def test_upgrade_fee_comes_from_the_path(judge, make_facts, policy) -> None:
    path = _path(policy, "Road", "Flight")
    facts = make_facts(weight_in_gms=5000.0, severity="warning")
    verdict = judge("upgrade_shipping_mode", {"to_mode": "Flight"}, facts=facts)
    assert verdict.allowed and verdict.amount == path.cost_usd(5.0)
    assert verdict.policy_action == "shipping_upgrade" and "shipping.upgrade.paths.Road_to_Flight" in verdict.rule
    assert judge("upgrade_shipping_mode", {"to_mode": "Flight"}, amount=path.cost_usd(5.0), facts=facts).allowed
    wrong = judge("upgrade_shipping_mode", {"to_mode": "Flight"}, amount=path.cost_usd(5.0) - 1, facts=facts)
    assert not wrong.allowed and any("fee" in v for v in wrong.violations)


def test_upgrade_automation_limit_on_the_fee(judge, make_facts, policy) -> None:
    limit = policy.approval.amount_limits["shipping_upgrade"].limit("operator")
    path = _path(policy, "Ship", "Flight")
    kg = (limit - path.base_fee_usd) / path.per_kg_usd  # a parcel whose fee is exactly the limit
    at = judge(
        "upgrade_shipping_mode",
        {"to_mode": "Flight"},
        facts=make_facts(mode_of_shipment="Ship", weight_in_gms=kg * 1000, weight_kg=kg),
    )
    assert at.allowed and at.amount == limit and at.automatic
    heavier = kg + 0.01 / path.per_kg_usd
    over = judge(
        "upgrade_shipping_mode",
        {"to_mode": "Flight"},
        facts=make_facts(mode_of_shipment="Ship", weight_in_gms=heavier * 1000, weight_kg=heavier),
    )
    assert over.allowed and over.amount == round(limit + 0.01, 2) and over.required_role == "approver"


def test_upgrade_weight_bounds(judge, make_facts, policy) -> None:
    path = _path(policy, "Road", "Flight")

    def at(kg: float):
        return judge(
            "upgrade_shipping_mode", {"to_mode": "Flight"}, facts=make_facts(weight_kg=kg, weight_in_gms=kg * 1000)
        )

    assert not at(path.min_weight_kg).allowed  # the lower bound is exclusive
    assert at(path.min_weight_kg + 0.001).allowed
    assert at(path.max_weight_kg).allowed  # the upper bound is inclusive
    assert not at(path.max_weight_kg + 0.001).allowed


def test_upgrade_severity(judge, make_facts, policy) -> None:
    assert policy.shipping.upgrade.min_severity == "warning"
    assert not judge("upgrade_shipping_mode", {"to_mode": "Flight"}, facts=make_facts(severity="info")).allowed
    assert judge("upgrade_shipping_mode", {"to_mode": "Flight"}, facts=make_facts(severity="warning")).allowed
    ship = _path(policy, "Ship", "Flight")
    facts = {"mode_of_shipment": "Ship", "weight_kg": 3.0, "weight_in_gms": 3000.0}
    below = judge("upgrade_shipping_mode", {"to_mode": "Flight"}, facts=make_facts(severity="warning", **facts))
    assert ship.min_severity == "critical" and not below.allowed
    assert judge("upgrade_shipping_mode", {"to_mode": "Flight"}, facts=make_facts(severity="critical", **facts)).allowed


def test_unscored_order_uses_the_proposed_severity(judge, make_facts) -> None:
    facts = make_facts(severity=None)
    assert not judge("upgrade_shipping_mode", {"to_mode": "Flight"}, facts=facts).allowed
    assert judge("upgrade_shipping_mode", {"to_mode": "Flight", "severity": "warning"}, facts=facts).allowed


def test_one_upgrade_per_order(judge, make_history, policy) -> None:
    most = policy.shipping.upgrade.max_per_order
    assert judge(
        "upgrade_shipping_mode", {"to_mode": "Flight"}, history=make_history(upgrades_on_order=most - 1)
    ).allowed
    verdict = judge("upgrade_shipping_mode", {"to_mode": "Flight"}, history=make_history(upgrades_on_order=most))
    assert not verdict.allowed and any("max_per_order" in v for v in verdict.violations)


def test_no_path_no_upgrade(judge, make_facts) -> None:
    flight = judge("upgrade_shipping_mode", {"to_mode": "Road"}, facts=make_facts(mode_of_shipment="Flight"))
    assert not flight.allowed
    delivered = make_facts(delivery_date=make_facts().promised_delivery_date, order_status="delivered")
    assert not judge("upgrade_shipping_mode", {"to_mode": "Flight"}, facts=delivered).allowed


def test_priority_handling_for_light_road_parcels(judge, make_facts, policy) -> None:
    light = _path(policy, "Road", "Flight").min_weight_kg
    fee = policy.shipping.priority_handling_fee_usd
    facts = make_facts(weight_kg=light, weight_in_gms=light * 1000, severity="warning")
    verdict = judge("upgrade_shipping_mode", {"to_mode": "Road", "kind": "priority_handling"}, facts=facts)
    assert verdict.allowed and verdict.automatic and verdict.amount == fee
    assert judge("upgrade_shipping_mode", {"to_mode": "Road"}, facts=facts).allowed  # same mode = priority handling
    heavy = make_facts(weight_kg=light + 0.001, weight_in_gms=light * 1000 + 1)
    assert not judge("upgrade_shipping_mode", {"to_mode": "Road"}, facts=heavy).allowed


def test_reschedule(judge, make_facts, now) -> None:
    verdict = judge("reschedule_shipment", {"new_date": now.date().isoformat()})
    assert verdict.allowed and verdict.automatic and verdict.policy_action == "reschedule_shipment"
    assert verdict.rule.startswith("approval.action_min_role.reschedule_shipment: operator")
    past = judge("reschedule_shipment", {"new_date": "2020-01-01"})
    assert not past.allowed and any("past" in v for v in past.violations)
    assert not judge("reschedule_shipment", {"new_date": "soon"}).allowed
    delivered = make_facts(delivery_date=now.date(), order_status="delivered")
    assert not judge("reschedule_shipment", facts=delivered).allowed


def test_carrier_reassignment_keeps_the_mode_and_weight_limit(judge, make_facts, policy) -> None:
    road = [c for c in policy.carriers if c.mode == "Road"]
    carrier = min(road, key=lambda c: c.max_weight_kg)
    kg = carrier.max_weight_kg
    ok = judge("reschedule_shipment", {"carrier_id": carrier.id}, facts=make_facts(weight_kg=kg))
    assert ok.allowed and ok.policy_action == "carrier_reassignment" and ok.automatic
    assert not judge("reschedule_shipment", {"carrier_id": carrier.id}, facts=make_facts(weight_kg=kg + 0.001)).allowed
    flight = next(c for c in policy.carriers if c.mode == "Flight")
    assert not judge("reschedule_shipment", {"carrier_id": flight.id}).allowed
    assert not judge("reschedule_shipment", {"carrier_id": "nobody"}).allowed


def test_transfer_needs_a_backlog_and_an_approver(judge, make_facts, policy) -> None:
    limit = policy.warehouses.transfer_backlog_hours
    waiting = {"ship_date": None, "order_status": "processing", "days_late": 0}
    at = judge("transfer_warehouse", {"to_block": "F"}, facts=make_facts(block_backlog_hours=float(limit), **waiting))
    assert not at.allowed and any("transfer_backlog_hours" in v for v in at.violations)
    over = judge("transfer_warehouse", {"to_block": "F"}, facts=make_facts(block_backlog_hours=limit + 0.01, **waiting))
    assert (
        over.allowed
        and not over.automatic
        and over.required_role == policy.approval.action_min_role["warehouse_transfer"]
    )
    assert judge(
        "transfer_warehouse",
        {"to_block": "F"},
        facts=make_facts(block_backlog_hours=limit + 1, **waiting),
        decider="approver",
    ).allowed


@pytest.mark.parametrize(
    ("args", "overrides", "expected"),
    [
        ({"to_block": "B"}, {}, "already in block"),
        ({"to_block": "E"}, {}, "to_block"),
        ({}, {}, "to_block"),
        ({"to_block": "F"}, {"ship_date": "keep"}, "left its warehouse"),
        ({"to_block": "F"}, {"block_backlog_hours": None}, "unknown"),
    ],
)
def test_transfer_violations(judge, make_facts, args, overrides, expected) -> None:
    base = {"ship_date": None, "order_status": "processing", "days_late": 0, "block_backlog_hours": 100.0}
    if overrides.pop("ship_date", None) == "keep":
        base.update(ship_date=make_facts().ship_date, order_status="shipped")
    verdict = judge("transfer_warehouse", args, facts=make_facts(**{**base, **overrides}))
    assert not verdict.allowed and any(expected in v for v in verdict.violations)
