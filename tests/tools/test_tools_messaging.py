"""Customer messages: drafts from the policy's templates that never disclose what the policy forbids and fit its
limits, the apology limit and quiet hours from draft to outbox row, interaction logging."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tools.actions import ProposedAction
from tools.deps import current
from tools.executor import execute
from tools.guardrails import check_action, disclosure_problems
from tools.messaging import TEMPLATE_SECTIONS, TONES, draft_message
from tools.orders import customer_history, require_order

pytestmark = pytest.mark.usefixtures("tools")

EXTRA = {"new_mode": "Flight", "refund_amount": 42.0, "credit_amount": 46.2}


async def _propose(draft_args: dict[str, Any], now, n: int = 1):
    action = ProposedAction(
        f"customer:send_notification:{n}",
        "customer",
        "send_notification",
        draft_args,
        "tell the customer",
        citations=("policy:communication#apology-limit",),
    )
    facts = await require_order(draft_args["order_id"], now=now)
    history = await customer_history(facts.customer_ref, facts.order_id, now=now)
    return action, check_action(action, facts, history, current().policy, now=now)


@pytest.mark.parametrize("kind", sorted(TEMPLATE_SECTIONS))
@pytest.mark.parametrize("tone", TONES)
async def test_drafts_never_disclose_and_fit(seed_order, policy, now, kind, tone) -> None:
    order_id = seed_order(prediction={"delay_probability": 0.87, "severity": "critical"}, deviation="critical")
    draft = await draft_message(order_id, "critical", kind, tone, now=now, **EXTRA)
    text = f"{draft.subject or ''} {draft.body}"
    assert disclosure_problems(text, policy) == []
    assert "0.87" not in text and "87%" not in text and "critical" not in text.lower()
    for term in policy.communication.never_disclose:
        assert term.lower() not in text.lower()
    if draft.channel == "sms":
        assert len(draft.body) <= policy.communication.sms_max_chars
    else:
        assert len(draft.body.split()) <= policy.communication.email_body_max_words
        assert len(draft.subject or "") <= policy.communication.email_subject_max_chars
    assert draft.citations[0].startswith("policy:email-templates#") and order_id in draft.body
    assert "{" not in text and "}" not in text


async def test_caller_text_that_discloses_is_replaced(seed_order, now) -> None:
    order_id = seed_order(prediction={})
    draft = await draft_message(
        order_id, "critical", "delay_notice", action_summary="watching a delay probability of 0.9", now=now
    )
    assert "probability" not in draft.body and any("action_summary" in w for w in draft.warnings)


async def test_graph_style_calls(seed_order, now) -> None:
    order_id = seed_order(prediction={"severity": "critical"}, deviation="critical")
    upgrade = await draft_message(order_id, "critical", "upgrade", "apologetic", now=now)
    assert upgrade.kind == "upgrade_notice" and "Flight" in upgrade.body and "sorry" in upgrade.body
    delay = await draft_message(order_id, "warning", "delay", "neutral", now=now)
    assert delay.kind == "delay_notice" and "sorry" not in delay.body
    reschedule = await draft_message(order_id, "critical", "reschedule", "apologetic", now=now)
    assert reschedule.kind == "apology" and "we have rescheduled the delivery" in reschedule.body
    formal = await draft_message(order_id, "warning", "delay_notice", "formal", now=now)
    assert formal.body.startswith("Dear Ava,")
    with pytest.raises(ValueError, match="kind"):
        await draft_message(order_id, "critical", "poem", now=now)
    with pytest.raises(ValueError, match="tone"):
        await draft_message(order_id, "critical", "delay", "sarcastic", now=now)
    with pytest.raises(ValueError, match="refund_amount"):
        await draft_message(order_id, "critical", "refund_confirmation", now=now)


async def test_external_customer_is_greeted_without_a_name(external_order, now) -> None:
    order_id = external_order(customer_ref="C00321", prediction={})
    draft = await draft_message(order_id, "critical", "apology", now=now)
    assert draft.body.startswith("Hello there,") and draft.kind == "apology"


async def test_apology_once_per_window_from_draft_to_outbox(seed_order, db, now) -> None:
    order_id = seed_order(prediction={"severity": "critical"})
    draft = await draft_message(order_id, "critical", "apology", now=now)
    action, verdict = await _propose(draft.action_args(), now)
    assert verdict.allowed and verdict.automatic, verdict.violations
    done = await execute(action, verdict, thread_id="t-msg", actor="agent:customer", now=now)
    row = db.execute("SELECT * FROM notifications WHERE notification_id = %s", (done.ledger_id,)).fetchone()
    assert row["kind"] == "apology" and row["status"] == "queued" and row["channel"] == "email"
    assert row["customer_ref"] == str(row["customer_id"]) and row["policy_rule"] == verdict.rule
    # a second apology to the same customer, on another of their orders, inside the window
    facts = await require_order(order_id, now=now)
    other = seed_order(customer_id=facts.customer_id, prediction={"severity": "critical"})
    later = now + timedelta(hours=3)
    second = await draft_message(other, "critical", "apology", now=later)
    assert second.kind == "delay_notice" and "sorry" not in second.body and second.warnings
    _, refused = await _propose({**second.action_args(), "body": "We are sorry, again."}, later)
    assert not refused.allowed and any("communication.apology" in v for v in refused.violations)
    # after the window an apology is allowed again
    after = now + timedelta(hours=current().policy.communication.apology.window_hours, minutes=1)
    assert (await draft_message(other, "critical", "apology", now=after)).kind == "apology"


async def test_sms_in_quiet_hours_is_queued(seed_order, db, now) -> None:
    order_id = seed_order(prediction={"severity": "critical"})
    night = now.replace(hour=22, minute=15)
    draft = await draft_message(order_id, "critical", "sms_update", now=night)
    morning = (night + timedelta(days=1)).replace(hour=8, minute=0)
    assert draft.channel == "sms" and draft.send_after == morning
    action, verdict = await _propose(draft.action_args(), night)
    assert verdict.allowed and verdict.send_after == morning.isoformat()
    done = await execute(action, verdict, thread_id="t-sms", actor="agent:customer", now=night)
    row = db.execute("SELECT * FROM notifications WHERE notification_id = %s", (done.ledger_id,)).fetchone()
    assert row["send_after"] == morning and row["status"] == "queued"


async def test_large_refund_confirmations_are_copied(seed_order, db, policy, now) -> None:
    order_id = seed_order(prediction={})
    over = policy.large_refund_copies.over_usd + 1
    draft = await draft_message(order_id, "critical", "refund_confirmation", refund_amount=over, now=now)
    action, verdict = await _propose({**draft.action_args(), "refund_amount": over}, now)
    done = await execute(action, verdict, thread_id="t-copy", actor="agent:customer", now=now)
    row = db.execute("SELECT details FROM notifications WHERE notification_id = %s", (done.ledger_id,)).fetchone()
    assert row["details"]["bcc"] == list(policy.large_refund_copies.copy_to)
