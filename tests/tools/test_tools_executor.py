"""The executor over the real ledgers: one row per action key (a replay writes nothing), attribution and the
policy rule stored, refusals, the limits re-checked at write time, external customer refs."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest

from tools.actions import ProposedAction
from tools.deps import current
from tools.executor import ActionRefused, execute
from tools.guardrails import check_action
from tools.ledger import LedgerLimitError
from tools.orders import customer_history, require_order

pytestmark = pytest.mark.usefixtures("tools")


def _action(name: str, agent: str, order_id: str, amount: float | None = None, n: int = 1, **args: Any):
    return ProposedAction(
        f"{agent}:{name}:{n}",
        agent,
        name,
        {"order_id": order_id, **args},
        f"test {name}",
        amount,
        ("policy:refunds#compensation-tiers",),
    )


async def _judge(action: ProposedAction, now, *, decider: str | None = None):
    facts = await require_order(action.args["order_id"], now=now)
    history = await customer_history(facts.customer_ref, facts.order_id, now=now)
    return check_action(action, facts, history, current().policy, now=now, decider_role=decider)


def _rows(db, table: str, key: str) -> list[dict[str, Any]]:
    return db.execute(f"SELECT * FROM {table} WHERE idempotency_key = %s", (key,)).fetchall()


async def test_refund_twice_writes_one_attributed_row(seed_order, db, now, caplog) -> None:
    caplog.set_level(logging.INFO, logger="tools.ledger")
    order_id = seed_order()
    action = _action("issue_refund", "payment", order_id, amount=19.0)
    verdict = await _judge(action, now)
    assert verdict.allowed and verdict.automatic
    thread = f"thread-{uuid.uuid4().hex[:6]}"
    first = await execute(action, verdict, thread_id=thread, actor="agent:payment", now=now)
    second = await execute(action, verdict, thread_id=thread, actor="agent:payment", now=now)
    assert first.created and not second.created and first.ledger_id == second.ledger_id
    assert first.ledger == "refunds" and first.amount == 19.0 and "already recorded" in second.summary
    assert [r.written for r in caplog.records if r.getMessage() == "ledger write"] == [True, False]
    rows = _rows(db, "refunds", f"{thread}:payment:issue_refund:1")
    assert len(rows) == 1
    row = rows[0]
    assert row["actor"] == "agent:payment" and row["agent"] == "payment" and row["thread_id"] == thread
    assert row["policy_rule"] == verdict.rule and "approval.amount_limits.refund" in row["policy_rule"]
    assert row["citations"] == ["policy:refunds#compensation-tiers"]
    facts = await require_order(order_id, now=now)
    assert row["customer_ref"] == facts.customer_ref and float(row["amount"]) == 19.0


async def test_refused_actions_are_never_written(seed_order, db, now) -> None:
    order_id = seed_order()
    action = _action("issue_refund", "payment", order_id, amount=5000.0)
    verdict = await _judge(action, now)
    assert not verdict.allowed
    with pytest.raises(ActionRefused, match="not allowed"):
        await execute(action, verdict, thread_id="t-refused", actor="admin-key", now=now)
    assert _rows(db, "refunds", "t-refused:payment:issue_refund:1") == []


async def test_an_agent_may_not_execute_what_needs_approval(seed_order, db, now) -> None:
    order_id = seed_order(order_value=1000.0)
    action = _action("issue_refund", "payment", order_id, amount=120.0)
    verdict = await _judge(action, now)
    assert verdict.allowed and not verdict.automatic and verdict.required_role == "approver"
    with pytest.raises(ActionRefused, match="approval"):
        await execute(action, verdict, thread_id="t-approve", actor="agent:payment", now=now)
    done = await execute(action, verdict, thread_id="t-approve", actor="ops-approver", now=now)
    assert done.created and done.actor == "ops-approver"
    assert _rows(db, "refunds", "t-approve:payment:issue_refund:1")[0]["actor"] == "ops-approver"


async def test_mismatched_verdict_is_refused(seed_order, now) -> None:
    order_id = seed_order()
    action = _action("issue_refund", "payment", order_id, amount=19.0)
    other = _action("issue_refund", "payment", order_id, amount=19.0, n=2)
    with pytest.raises(ValueError, match="judges"):
        await execute(action, await _judge(other, now), thread_id="t", actor="agent:payment", now=now)


async def test_second_compensation_is_stopped_at_write_time(seed_order, db, now) -> None:
    order_id = seed_order()
    refund = _action("issue_refund", "payment", order_id, amount=19.0)
    stale = await _judge(
        _action("apply_store_credit", "payment", order_id, amount=20.0, kind="refund_alternative"), now
    )
    await execute(refund, await _judge(refund, now), thread_id="t-comp", actor="agent:payment", now=now)
    credit = _action("apply_store_credit", "payment", order_id, amount=20.0, kind="refund_alternative")
    assert not (await _judge(credit, now)).allowed  # the guardrail sees the refund now
    with pytest.raises(LedgerLimitError, match="max_compensations_per_order"):
        await execute(credit, stale, thread_id="t-comp", actor="agent:payment", now=now)
    assert _rows(db, "store_credits", "t-comp:payment:apply_store_credit:1") == []


async def test_store_credit_for_an_external_customer(external_order, db, now) -> None:
    order_id = external_order(customer_ref="C00999", order_status="shipped", prediction={})
    facts = await require_order(order_id, now=now)
    credit = _action("apply_store_credit", "payment", order_id, amount=9.5, kind="goodwill")
    # the order is 2 days late: goodwill is for orders in transit, the credit kind is explicit
    verdict = await _judge(credit, now)
    assert verdict.allowed, verdict.violations
    done = await execute(credit, verdict, thread_id="t-ext", actor="agent:payment", now=now)
    row = _rows(db, "store_credits", "t-ext:payment:apply_store_credit:1")[0]
    assert done.created and row["customer_id"] is None and row["customer_ref"] == "C00999" == facts.customer_ref
    assert row["kind"] == "goodwill" and row["expires_on"] == (now + timedelta(days=365)).date()


async def test_upgrade_once_per_order(seed_order, db, now) -> None:
    order_id = seed_order(weight_in_gms=4000, prediction={"severity": "warning"})  # light Road: priority handling
    first = _action("upgrade_shipping_mode", "shipment", order_id, to_mode="Road")
    verdict = await _judge(first, now)
    assert verdict.allowed and verdict.automatic
    stale = await _judge(_action("upgrade_shipping_mode", "shipment", order_id, n=2, to_mode="Road"), now)
    done = await execute(first, verdict, thread_id="t-up", actor="agent:shipment", now=now)
    row = _rows(db, "shipment_changes", "t-up:shipment:upgrade_shipping_mode:1")[0]
    assert row["change_type"] == "priority_handling" and float(row["cost"]) == verdict.amount == done.amount
    second = _action("upgrade_shipping_mode", "shipment", order_id, n=2, to_mode="Road")
    with pytest.raises(LedgerLimitError, match="max_per_order"):
        await execute(second, stale, thread_id="t-up", actor="agent:shipment", now=now)


async def test_reschedule_and_transfer_rows(seed_order, db, now) -> None:
    order_id = seed_order()
    action = _action("reschedule_shipment", "shipment", order_id, carrier_id="routeline")
    done = await execute(action, await _judge(action, now), thread_id="t-rs", actor="agent:shipment", now=now)
    row = _rows(db, "shipment_changes", "t-rs:shipment:reschedule_shipment:1")[0]
    assert done.amount is None and row["change_type"] == "carrier_reassignment" and row["to_value"] == "routeline"
    assert row["policy_rule"].startswith("approval.action_min_role.carrier_reassignment")


async def test_tickets_owner_and_priority(seed_order, db, now) -> None:
    order_id = seed_order(prediction={})
    ticket = _action("create_ticket", "escalation", order_id, team="operations", priority="P1", summary="late")
    await execute(ticket, await _judge(ticket, now), thread_id="t-esc", actor="agent:escalation", now=now)
    owner = _action("assign_owner", "escalation", order_id, owner="customer_care_lead")
    done = await execute(owner, await _judge(owner, now), thread_id="t-esc", actor="agent:escalation", now=now)
    again = await execute(owner, await _judge(owner, now), thread_id="t-esc", actor="agent:escalation", now=now)
    assert done.created and not again.created and done.ledger == "ticket_updates"
    tickets = db.execute("SELECT * FROM tickets WHERE order_id = %s", (order_id,)).fetchall()
    assert len(tickets) == 1 and tickets[0]["owner"] == "customer_care_lead" and tickets[0]["priority"] == "P1"
    update = _rows(db, "ticket_updates", "t-esc:escalation:assign_owner:1")[0]
    assert update["ticket_id"] == tickets[0]["ticket_id"]


async def test_log_interaction_row(external_order, db, now) -> None:
    order_id = external_order(customer_ref="C00555")
    action = _action(
        "log_interaction",
        "customer",
        order_id,
        summary="customer asked for an update",
        channel="phone",
        direction="inbound",
    )
    done = await execute(action, await _judge(action, now), thread_id="t-log", actor="agent:customer", now=now)
    row = _rows(db, "interactions", "t-log:customer:log_interaction:1")[0]
    assert done.ledger == "interactions" and row["customer_ref"] == "C00555" and row["direction"] == "inbound"
