"""Guardrails for customer messages, escalations and the checks every action gets: channels by severity, length
limits, one apology per customer in the window, quiet hours (scheduled, not refused), never-disclose terms,
ticket priorities and routes, interaction records, scopes and order ids."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tools.actions import ProposedAction
from tools.guardrails import check_action, disclosure_problems

BODY = "Hello Ava, your order is taking longer than planned. It is now expected on Friday."


def _email(**extra):
    return {"channel": "email", "subject": "Update on your order", "body": BODY, **extra}


def test_channels_by_severity(judge, make_facts, policy) -> None:
    for severity in ("info", "warning", "critical"):
        allowed = policy.communication.channels_for(severity)
        for channel in ("email", "sms"):
            verdict = judge(
                "send_notification", {"channel": channel, "body": BODY}, facts=make_facts(severity=severity)
            )
            assert verdict.allowed == (channel in allowed), (severity, channel, verdict.violations)
    ok = judge("send_notification", _email())
    assert ok.automatic and ok.policy_action == "customer_notification"
    assert "approval.action_min_role.customer_notification: operator" in ok.rule


def test_transactional_messages_go_by_email(judge) -> None:
    assert judge("send_notification", _email(kind="refund_confirmation")).allowed
    assert judge("send_notification", _email(template="upgrade")).allowed  # short names are accepted
    sms = judge("send_notification", {"channel": "sms", "kind": "upgrade_notice", "body": "Upgraded."})
    assert not sms.allowed
    assert not judge("send_notification", _email(kind="newsletter")).allowed
    assert not judge("send_notification", {"channel": "fax", "body": BODY}).allowed


def test_sms_length_boundary(judge, policy) -> None:
    limit = policy.communication.sms_max_chars
    assert judge("send_notification", {"channel": "sms", "body": "x" * limit}).allowed
    verdict = judge("send_notification", {"channel": "sms", "body": "x" * (limit + 1)})
    assert not verdict.allowed and any("sms_max_chars" in v for v in verdict.violations)


def test_email_length_boundaries(judge, policy) -> None:
    words, chars = policy.communication.email_body_max_words, policy.communication.email_subject_max_chars
    assert judge("send_notification", _email(body=" ".join(["word"] * words))).allowed
    assert not judge("send_notification", _email(body=" ".join(["word"] * (words + 1)))).allowed
    assert judge("send_notification", _email(subject="s" * chars)).allowed
    assert not judge("send_notification", _email(subject="s" * (chars + 1))).allowed
    assert not judge("send_notification", _email(body="  ")).allowed


def test_one_apology_per_customer_in_the_window(judge, make_history, policy) -> None:
    most = policy.communication.apology.max_per_customer
    apology = _email(kind="apology", body="We are sorry: your order is late.")
    assert judge("send_notification", apology, history=make_history(apologies_in_window=most - 1)).allowed
    verdict = judge("send_notification", apology, history=make_history(apologies_in_window=most))
    assert not verdict.allowed and any("communication.apology" in v for v in verdict.violations)
    # an apology sent as a "status update" is still an apology
    sneaky = _email(kind="status_update", body="We apologise for the wait.")
    assert not judge("send_notification", sneaky, history=make_history(apologies_in_window=most)).allowed
    assert judge("send_notification", _email(), history=make_history(apologies_in_window=most)).allowed


@pytest.mark.parametrize(
    ("hour", "minute", "queued_until"),
    [(20, 59, None), (21, 0, (1, 8)), (23, 30, (1, 8)), (3, 0, (0, 8)), (7, 59, (0, 8)), (8, 0, None)],
)
def test_quiet_hours_schedule_sms(judge, now, policy, hour, minute, queued_until) -> None:
    assert (policy.communication.quiet_hours.start_hour, policy.communication.quiet_hours.end_hour) == (21, 8)
    at = now.replace(hour=hour, minute=minute)
    verdict = judge("send_notification", {"channel": "sms", "body": "Order delayed."}, now=at)
    assert verdict.allowed
    if queued_until is None:
        assert verdict.send_after is None
    else:
        days, end = queued_until
        expected = (at + timedelta(days=days)).replace(hour=end, minute=0)
        assert datetime.fromisoformat(verdict.send_after or "") == expected
        assert "quiet_hours" in verdict.rule
    email = judge("send_notification", _email(), now=at)
    assert email.allowed and email.send_after is None


@pytest.mark.parametrize(
    "body",
    [
        "Our model gives a delay probability of 0.83.",
        "The internal severity of your order is critical.",
        "There is an 83% chance your order is late.",
        "The probability of delay is high.",
        "The carrier penalties will cover this.",
        "Other customers' data shows the same.",
        "Your account is under fraud review.",
        "The DELAY  PROBABILITY is high.",
    ],
)
def test_never_disclose(judge, policy, body) -> None:
    verdict = judge("send_notification", _email(body=body))
    assert not verdict.allowed
    assert disclosure_problems(body, policy)


def test_plain_messages_disclose_nothing(policy) -> None:
    assert disclosure_problems(BODY, policy) == []
    assert disclosure_problems("Your order is delayed; we are sorry. It is now expected on Friday.", policy) == []


def test_notification_needs_a_customer(judge, make_facts) -> None:
    assert not judge("send_notification", _email(), facts=make_facts(customer_ref=None, customer_id=None)).allowed
    assert judge("send_notification", _email(), facts=make_facts(customer_ref="C00123", customer_id=None)).allowed


# --------------------------------------------------------------------------- escalation


def _ticket(**extra):
    return {"team": "operations", "priority": "P1", "summary": "critical delay", **extra}


def test_ticket_priority_not_below_the_severity(judge, make_facts, policy) -> None:
    assert policy.escalation.priorities["critical"] == "P1"
    ok = judge("create_ticket", _ticket())
    assert ok.allowed and ok.automatic and "escalation.priorities.critical: P1" in ok.rule
    assert not judge("create_ticket", _ticket(priority="P2")).allowed
    warning = make_facts(severity="warning")
    assert judge("create_ticket", _ticket(priority="P1"), facts=warning).allowed  # more urgent is fine
    assert judge("create_ticket", _ticket(priority="p2"), facts=warning).allowed
    assert not judge("create_ticket", _ticket(priority="P3"), facts=warning).allowed
    assert not judge("create_ticket", _ticket(priority="P9")).allowed


def test_ticket_route_for_repeated_care_calls(judge, make_facts, policy) -> None:
    over, route = policy.escalation.care_calls_over, policy.escalation.routes["care_calls"]
    assert judge("create_ticket", _ticket(team="fulfillment_ops"), facts=make_facts(customer_care_calls=over)).allowed
    many = make_facts(customer_care_calls=over + 1)
    verdict = judge("create_ticket", _ticket(team="fulfillment_ops"), facts=many)
    assert not verdict.allowed and any(route in v for v in verdict.violations)
    assert judge("create_ticket", _ticket(team=route), facts=many).allowed


def test_ticket_needs_team_and_summary(judge) -> None:
    assert not judge("create_ticket", _ticket(team="")).allowed
    assert not judge("create_ticket", _ticket(summary="")).allowed


def test_owner_and_priority_flags(judge) -> None:
    assert judge("assign_owner", {"owner": "customer_care_lead"}).allowed
    assert not judge("assign_owner", {}).allowed
    assert judge("flag_priority", {"priority": "P1"}).allowed
    assert not judge("flag_priority", {"priority": "P3"}).allowed


def test_log_interaction(judge) -> None:
    verdict = judge(
        "log_interaction", {"summary": "customer called about the delay", "channel": "phone", "direction": "inbound"}
    )
    assert verdict.allowed and verdict.automatic and verdict.policy_action == "log_interaction"
    assert judge("log_interaction", {"summary": "note"}, agent="escalation").allowed
    assert not judge("log_interaction", {"summary": "x", "channel": "pigeon"}).allowed
    assert not judge("log_interaction", {"summary": "x", "direction": "sideways"}).allowed
    assert not judge("log_interaction", {}).allowed


# --------------------------------------------------------------------------- every action


def test_an_agent_proposes_only_its_actions(judge) -> None:
    verdict = judge("issue_refund", amount=20, agent="shipment")
    assert not verdict.allowed and any("may not propose" in v for v in verdict.violations)
    assert not judge("send_notification", _email(), agent="robot").allowed


def test_the_order_must_be_the_one_under_review(make_facts, make_history, policy, now) -> None:
    action = ProposedAction("payment:issue_refund:1", "payment", "issue_refund", {"order_id": "ORD-OTHER"}, "x", 20.0)
    verdict = check_action(action, make_facts(), make_history(), policy, now=now)
    assert not verdict.allowed and any("order under review" in v for v in verdict.violations)
    missing = ProposedAction("payment:issue_refund:1", "payment", "issue_refund", {}, "x", 20.0)
    assert not check_action(missing, make_facts(), make_history(), policy, now=now).allowed


def test_unknown_action(make_facts, make_history, policy, now) -> None:
    action = ProposedAction("x:1", "payment", "teleport", {"order_id": "ORD-T1"}, "x")  # type: ignore[arg-type]
    verdict = check_action(action, make_facts(), make_history(), policy, now=now)
    assert not verdict.allowed and verdict.required_role is None and verdict.policy_action == "unknown"


def test_refused_verdicts_name_no_role_and_keep_the_rule(judge) -> None:
    verdict = judge("issue_refund", amount=10_000)
    assert not verdict.allowed and verdict.required_role is None and not verdict.automatic
    assert verdict.rule and verdict.reason.startswith("refused by policy")
