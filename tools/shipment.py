"""Shipment tools: carrier status, upgrade options and warehouse state (reads), and the shipment ledger writes.

Reads run at once: :func:`check_carrier_status`, :func:`upgrade_options`, :func:`check_warehouse`. The writes
(:func:`reschedule_shipment`, :func:`upgrade_shipping_mode`, :func:`transfer_warehouse`) each record one
``shipment_changes`` row and are called only by :func:`tools.executor.execute`, after the guardrails allowed them.

The seeded orders name made-up carriers; the policy's contracted carriers are the ones the selection matrix
assigns. An order's carrier is the contracted carrier of that id or name, else the matrix's choice for its mode
and product importance (``carrier_matched`` says which).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from rag.policy import Carrier, Policy
from tools.deps import current
from tools.guardrails import severity_of, shipping_options
from tools.ledger import Attribution, Guard, LedgerWrite, count, insert_once
from tools.orders import OrderFacts, customer_history, require_order, utc_now

UPGRADE_CHANGES = ("mode_upgrade", "priority_handling")


@dataclass(frozen=True)
class CarrierStatus:
    """The order's carrier, its SLA from the policy, and how late the parcel is."""

    order_id: str
    carrier_name: str | None  # as on the order
    carrier_id: str | None  # the contracted carrier (policy.carriers)
    carrier_matched: bool  # True: the order names a contracted carrier; False: chosen by the selection matrix
    mode: str | None
    transit_days: int | None
    on_time_target_pct: float | None
    max_weight_kg: float | None
    ship_date: date | None
    promised_delivery_date: date | None
    delivery_date: date | None
    expected_delivery: date | None  # the carrier's estimate (not a promise)
    days_late: int  # against the promised date
    carrier_days_late: int | None  # against ship date + the carrier's transit days
    claim_eligible: bool  # carrier_selection.claim_after_days_late reached
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpgradeOptions:
    """The upgrades open to an order, each with its fee and who may book it."""

    order_id: str
    severity: str
    mode: str | None
    weight_kg: float | None
    options: tuple[dict[str, Any], ...]
    reasons: tuple[str, ...] = ()  # why there are none


@dataclass(frozen=True)
class WarehouseStatus:
    """The order's warehouse block: its SLA, backlog and whether a transfer is open."""

    order_id: str
    block: str | None
    processing_hours: int | None
    daily_capacity_orders: int | None
    backlog_hours: float | None
    transfer_backlog_hours: int
    transfer_possible: bool
    other_blocks: tuple[str, ...] = field(default_factory=tuple)
    reasons: tuple[str, ...] = ()


def order_carrier(facts: OrderFacts, policy: Policy) -> tuple[Carrier | None, bool]:
    """The contracted carrier the order names, else the selection matrix's; and whether it was named."""
    name = (facts.carrier_name or "").strip().lower()
    for carrier in policy.carriers:
        if name and name in (carrier.id, carrier.name.lower()):
            return carrier, True
    if facts.mode_of_shipment in policy.shipping.modes and facts.product_importance in ("high", "medium", "low"):
        return policy.carrier_for(facts.mode_of_shipment or "", facts.product_importance or ""), False
    return None, False


def expected_delivery(facts: OrderFacts, carrier: Carrier | None, policy: Policy, today: date) -> date | None:
    """The carrier's estimate: delivered date; else ship date + transit; else today + processing + transit.

    A predicted or actual delay never yields a date on or before the promised one (no false promise).
    """
    if facts.delivery_date is not None:
        return facts.delivery_date
    if carrier is None:
        return None
    if facts.ship_date is not None:
        estimate = facts.ship_date + timedelta(days=carrier.transit_days)
    else:
        block = policy.warehouses.blocks.get(facts.warehouse_block or "")
        processing = math.ceil(block.processing_hours / 24) if block else 1
        estimate = today + timedelta(days=processing + carrier.transit_days)
    estimate = max(estimate, today + timedelta(days=1))
    at_risk = facts.days_late > 0 or severity_of(facts, {}) in ("warning", "critical")
    if facts.promised_delivery_date is not None and at_risk:
        estimate = max(estimate, facts.promised_delivery_date + timedelta(days=1))
    return estimate


def carrier_status(facts: OrderFacts, policy: Policy, today: date) -> CarrierStatus:
    """:func:`check_carrier_status` on facts already read (pure)."""
    carrier, matched = order_carrier(facts, policy)
    selection = policy.carrier_selection
    late_vs_carrier: int | None = None
    rules = [f"carrier_selection.claim_after_days_late: {selection.claim_after_days_late}"]
    if carrier is not None:
        rules.insert(
            0, f"carriers.{carrier.id}: {carrier.transit_days} days transit, {carrier.on_time_target_pct:g}% on time"
        )
        if facts.ship_date is not None:
            due = facts.ship_date + timedelta(days=carrier.transit_days)
            late_vs_carrier = max(0, ((facts.delivery_date or today) - due).days)
    if not matched and carrier is not None:
        rules.append(f"carrier_selection.matrix.{facts.mode_of_shipment}.{facts.product_importance}: {carrier.id}")
    return CarrierStatus(
        order_id=facts.order_id,
        carrier_name=facts.carrier_name,
        carrier_id=carrier.id if carrier else None,
        carrier_matched=matched,
        mode=facts.mode_of_shipment,
        transit_days=carrier.transit_days if carrier else None,
        on_time_target_pct=carrier.on_time_target_pct if carrier else None,
        max_weight_kg=carrier.max_weight_kg if carrier else None,
        ship_date=facts.ship_date,
        promised_delivery_date=facts.promised_delivery_date,
        delivery_date=facts.delivery_date,
        expected_delivery=expected_delivery(facts, carrier, policy, today),
        days_late=facts.days_late,
        carrier_days_late=late_vs_carrier,
        claim_eligible=late_vs_carrier is not None and late_vs_carrier >= selection.claim_after_days_late,
        rules=tuple(rules),
    )


async def check_carrier_status(order_id: str, *, now: datetime | None = None) -> CarrierStatus:
    """The order's carrier, its on-time target, the days late and whether an SLA claim may be filed."""
    now = now or utc_now()
    facts = await require_order(order_id, now=now)
    return carrier_status(facts, current().policy, now.date())


async def upgrade_options(order_id: str, *, now: datetime | None = None) -> UpgradeOptions:
    """The shipping upgrades the policy allows for this order now, with their fee and least role."""
    now = now or utc_now()
    facts = await require_order(order_id, now=now)
    history = await customer_history(facts.customer_ref, order_id, now=now)
    policy = current().policy
    severity = severity_of(facts, {})
    most = policy.shipping.upgrade.max_per_order
    if history.upgrades_on_order >= most:
        return UpgradeOptions(
            order_id,
            severity,
            facts.mode_of_shipment,
            facts.weight_kg,
            (),
            (f"shipping.upgrade.max_per_order: {most}; already upgraded",),
        )
    options, reasons = shipping_options(facts, severity, policy)
    approval = policy.approval
    rows = tuple(
        {
            "kind": o.kind,
            "from_mode": o.from_mode,
            "to_mode": o.to_mode,
            "fee": o.fee,
            "rule": o.rule,
            "required_role": approval.required_role("shipping_upgrade", o.fee),
            "automatic": approval.automation_allows("shipping_upgrade", o.fee),
        }
        for o in options
    )
    return UpgradeOptions(order_id, severity, facts.mode_of_shipment, facts.weight_kg, rows, tuple(reasons))


async def check_warehouse(order_id: str, *, now: datetime | None = None) -> WarehouseStatus:
    """The order's warehouse block, its processing SLA and backlog, and whether a transfer is open."""
    facts = await require_order(order_id, now=now)
    warehouses = current().policy.warehouses
    block = warehouses.blocks.get(facts.warehouse_block or "")
    limit = warehouses.transfer_backlog_hours
    reasons = []
    if facts.shipped:
        reasons.append("the order has left its block")
    if facts.block_backlog_hours is None or facts.block_backlog_hours <= limit:
        reasons.append(f"warehouses.transfer_backlog_hours: {limit}; backlog is {facts.block_backlog_hours} hours")
    return WarehouseStatus(
        order_id=order_id,
        block=facts.warehouse_block,
        processing_hours=block.processing_hours if block else None,
        daily_capacity_orders=block.daily_capacity_orders if block else None,
        backlog_hours=facts.block_backlog_hours,
        transfer_backlog_hours=limit,
        transfer_possible=not reasons,
        other_blocks=tuple(b for b in warehouses.blocks if b != facts.warehouse_block),
        reasons=tuple(reasons),
    )


# --------------------------------------------------------------------------- writes (through the executor)


async def reschedule_shipment(
    facts: OrderFacts,
    *,
    reason: str,
    attribution: Attribution,
    new_date: str | None = None,
    carrier_id: str | None = None,
) -> LedgerWrite:
    """Record a rescheduled pickup (or, with ``carrier_id``, a reassignment to another carrier of the mode)."""
    values: dict[str, Any]
    if carrier_id:
        values = {"change_type": "carrier_reassignment", "from_value": facts.carrier_name, "to_value": carrier_id}
    else:
        values = {"change_type": "reschedule", "from_value": _iso(facts.ship_date), "to_value": new_date}
    values.update(order_id=facts.order_id, cost=0)
    return await insert_once("shipment_changes", {**values, "details": {"reason": reason}}, attribution)


async def upgrade_shipping_mode(
    facts: OrderFacts, *, to_mode: str, kind: str, fee: float, reason: str, attribution: Attribution
) -> LedgerWrite:
    """Record a mode upgrade (or Road priority handling) at ``fee``; at most the policy's upgrades per order."""
    most = current().policy.shipping.upgrade.max_per_order

    async def within_limit(conn: Any) -> str | None:
        done = await count(
            conn,
            "SELECT count(*) FROM shipment_changes WHERE order_id = %(o)s AND change_type = ANY(%(t)s)",
            {"o": facts.order_id, "t": list(UPGRADE_CHANGES)},
        )
        return None if done <= most else f"shipping.upgrade.max_per_order: {most}; order {facts.order_id} has {done}"

    values = {
        "order_id": facts.order_id,
        "change_type": kind,
        "from_value": facts.mode_of_shipment,
        "to_value": to_mode if kind == "mode_upgrade" else f"{to_mode} priority",
        "cost": round(fee, 2),
        "details": {"reason": reason, "weight_kg": facts.weight_kg},
    }
    guard = Guard(lock=f"upgrade:{facts.order_id}", check=within_limit)
    return await insert_once("shipment_changes", values, attribution, guard=guard)


async def transfer_warehouse(facts: OrderFacts, *, to_block: str, reason: str, attribution: Attribution) -> LedgerWrite:
    """Record the transfer of a waiting order to another warehouse block."""
    values = {
        "order_id": facts.order_id,
        "change_type": "warehouse_transfer",
        "from_value": facts.warehouse_block,
        "to_value": to_block,
        "cost": 0,
        "details": {"reason": reason, "backlog_hours": facts.block_backlog_hours},
    }
    return await insert_once("shipment_changes", values, attribution)


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None
