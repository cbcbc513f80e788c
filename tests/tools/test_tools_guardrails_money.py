"""Guardrails for money: refunds and store credit, and the approval authority per role, each at its boundary.

Every number comes from the packaged policy file, so the tests follow it when it changes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from rag.policy import Policy
from tools.guardrails import refund_eligibility


def _tier_pct(policy: Policy, days_late: int) -> float:
    tier = policy.refunds.tier_for(days_late)
    assert tier is not None
    return tier.refund_pct


# --------------------------------------------------------------------------- approval authority


def test_refund_at_the_automation_limit_is_automatic(judge, make_facts, policy) -> None:
    limit = policy.approval.amount_limits["refund"].limit("operator")
    facts = make_facts(amount_paid=limit * 100 / _tier_pct(policy, 4) + 100)
    verdict = judge("issue_refund", amount=limit, facts=facts)
    assert verdict.allowed and verdict.automatic and verdict.required_role == "operator"
    assert verdict.policy_action == "refund"
    assert f"approval.amount_limits.refund: operator up to {limit:g} USD" in verdict.rule
    over = judge("issue_refund", amount=limit + 0.01, facts=facts)
    assert over.allowed and not over.automatic and over.required_role == "approver"


def test_refund_over_the_approver_limit_needs_an_admin(judge, make_facts, policy) -> None:
    limit = policy.approval.amount_limits["refund"].limit("approver")
    facts = make_facts(amount_paid=limit * 100 / _tier_pct(policy, 4) + 100)
    assert judge("issue_refund", amount=limit, facts=facts).required_role == "approver"
    over = judge("issue_refund", amount=limit + 0.01, facts=facts)
    assert over.allowed and over.required_role == "admin" and not over.automatic


def test_decider_role_rechecks_an_edited_amount(judge, make_facts, policy) -> None:
    operator = policy.approval.amount_limits["refund"].limit("operator")
    approver = policy.approval.amount_limits["refund"].limit("approver")
    paid = approver * 100 / _tier_pct(policy, 4) + 100
    facts = make_facts(amount_paid=paid)
    amount = max(operator + 1, round(paid * policy.refunds.partial_refund_pct.min / 100, 2) + 1)
    as_operator = judge("issue_refund", amount=amount, facts=facts, decider="operator")
    assert not as_operator.allowed and as_operator.required_role == "approver"
    assert as_operator.decider_role == "operator" and "needs approver" in as_operator.violations[0]
    assert judge("issue_refund", amount=amount, facts=facts, decider="approver").allowed
    assert judge("issue_refund", amount=approver, facts=facts, decider="Approver").allowed
    assert not judge("issue_refund", amount=approver + 0.01, facts=facts, decider="approver").allowed
    assert judge("issue_refund", amount=approver + 0.01, facts=facts, decider="admin").allowed
    with pytest.raises(ValueError, match="decider_role"):
        judge("issue_refund", amount=amount, facts=facts, decider="boss")


def test_store_credit_automation_limit(judge, make_facts, policy) -> None:
    limit = policy.approval.amount_limits["store_credit"].limit("operator")
    facts = make_facts(amount_paid=2000.0)
    at = judge("apply_store_credit", {"kind": "refund_alternative"}, amount=limit, facts=facts)
    assert at.allowed and at.automatic
    over = judge("apply_store_credit", {"kind": "refund_alternative"}, amount=limit + 0.01, facts=facts)
    assert over.allowed and not over.automatic and over.required_role == "approver"


# --------------------------------------------------------------------------- refund eligibility


@pytest.mark.parametrize("status", ["pending", "refunded", None])
def test_refund_needs_an_eligible_payment_status(judge, make_facts, status) -> None:
    verdict = judge("issue_refund", amount=20, facts=make_facts(payment_status=status))
    assert not verdict.allowed and verdict.required_role is None
    assert any("eligible_payment_status" in v for v in verdict.violations)
    assert judge("issue_refund", amount=20, facts=make_facts(payment_status="paid")).allowed


def test_no_refund_before_the_promised_date(judge, make_facts) -> None:
    verdict = judge("issue_refund", amount=20, facts=make_facts(days_late=0))
    assert not verdict.allowed and any("not late" in v for v in verdict.violations)


def test_claim_window_boundary(judge, make_facts, now, policy) -> None:
    window = policy.refunds.claim_window_days
    inside = make_facts(days_late=4, promised_delivery_date=now.date() - timedelta(days=window))
    assert judge("issue_refund", amount=20, facts=inside).allowed
    outside = make_facts(days_late=4, promised_delivery_date=now.date() - timedelta(days=window + 1))
    verdict = judge("issue_refund", amount=20, facts=outside)
    assert not verdict.allowed and any("claim_window_days" in v for v in verdict.violations)


def test_claim_window_of_a_snapshot_counts_to_its_day(judge, make_facts, now, policy) -> None:
    window = policy.refunds.claim_window_days
    snapshot = make_facts(
        promised_delivery_date=now.date() - timedelta(days=window + 5), as_of=now.date() - timedelta(days=5)
    )
    assert judge("issue_refund", amount=20, facts=snapshot).allowed


@pytest.mark.parametrize("edge", ["min", "max"])
def test_tier_follows_days_late(make_facts, make_history, policy, now, edge) -> None:
    for tier in policy.refunds.tiers:
        days = tier.min_days_late if edge == "min" else (tier.max_days_late or tier.min_days_late + 30)
        elig = refund_eligibility(make_facts(days_late=days, amount_paid=400.0), make_history(), policy, now=now)
        assert elig.tier == tier.name and elig.refund_pct == tier.refund_pct
        assert elig.max_amount == round(400 * tier.refund_pct / 100, 2)


def test_refund_above_the_tier_cap_is_a_violation(judge, make_facts, policy) -> None:
    cap = round(400 * _tier_pct(policy, 4) / 100, 2)
    facts = make_facts(amount_paid=400.0)
    assert judge("issue_refund", amount=cap, facts=facts).allowed
    verdict = judge("issue_refund", amount=cap + 0.01, facts=facts)
    assert not verdict.allowed and any("cap" in v for v in verdict.violations)
    assert "refunds.tiers." in verdict.rule


def test_high_discount_cap_boundary(judge, make_facts, policy) -> None:
    rule = policy.refunds.high_discount
    days = next(t.min_days_late for t in policy.refunds.tiers if t.refund_pct > rule.max_refund_pct)
    tier_cap = round(400 * _tier_pct(policy, days) / 100, 2)
    capped = round(400 * rule.max_refund_pct / 100, 2)
    at = make_facts(amount_paid=400.0, days_late=days, discount_offered=rule.discount_over_pct)
    assert judge("issue_refund", amount=tier_cap, facts=at).allowed
    over = make_facts(amount_paid=400.0, days_late=days, discount_offered=rule.discount_over_pct + 1)
    assert judge("issue_refund", amount=capped, facts=over).allowed
    verdict = judge("issue_refund", amount=capped + 0.01, facts=over)
    assert not verdict.allowed and "refunds.high_discount" in verdict.rule


def test_max_compensations_per_order(judge, make_facts, make_history, policy) -> None:
    most = policy.refunds.max_compensations_per_order
    assert judge("issue_refund", amount=20, history=make_history(compensations_on_order=most - 1)).allowed
    verdict = judge("issue_refund", amount=20, history=make_history(compensations_on_order=most))
    assert not verdict.allowed and any("max_compensations_per_order" in v for v in verdict.violations)
    credit = judge(
        "apply_store_credit",
        {"kind": "goodwill"},
        amount=5,
        facts=make_facts(days_late=0),
        history=make_history(compensations_on_order=most),
    )
    assert not credit.allowed


def test_partial_refund_range(judge, make_facts, policy) -> None:
    low = policy.refunds.partial_refund_pct.min
    facts = make_facts(amount_paid=400.0)
    assert judge("issue_refund", amount=round(400 * low / 100, 2), facts=facts).allowed
    verdict = judge("issue_refund", amount=round(400 * low / 100, 2) - 0.01, facts=facts)
    assert not verdict.allowed and any("partial_refund_pct" in v for v in verdict.violations)


def test_full_refund_only_in_a_full_tier(judge, make_facts, policy) -> None:
    high = policy.refunds.partial_refund_pct.max
    full_tier = next(t for t in policy.refunds.tiers if t.refund_pct >= 100)
    lost = make_facts(amount_paid=400.0, days_late=full_tier.min_days_late)
    full = judge("issue_refund", amount=400.0, facts=lost)
    assert full.allowed and full.required_role == "admin"
    assert judge("issue_refund", amount=round(400 * high / 100, 2), facts=lost).allowed
    between = judge("issue_refund", amount=round(400 * high / 100, 2) + 0.01, facts=lost)
    assert not between.allowed and any("partial_refund_pct" in v for v in between.violations)
    assert not judge("issue_refund", amount=400.0, facts=make_facts(amount_paid=400.0)).allowed


def test_refund_needs_an_amount_that_agrees(judge) -> None:
    missing = judge("issue_refund")
    assert not missing.allowed and any("amount" in v for v in missing.violations)
    assert judge("issue_refund", {"amount": 20}).allowed
    disagree = judge("issue_refund", {"amount": 25}, amount=20)
    assert not disagree.allowed and any("disagrees" in v for v in disagree.violations)
    assert not judge("issue_refund", amount=-5).allowed


def test_refund_needs_a_known_amount_paid(judge, make_facts) -> None:
    verdict = judge("issue_refund", amount=20, facts=make_facts(amount_paid=None))
    assert not verdict.allowed


# --------------------------------------------------------------------------- store credit


def test_goodwill_cap_share_of_amount_paid(judge, make_facts, policy) -> None:
    goodwill = policy.store_credit.goodwill
    paid = round(goodwill.max_usd * 100 / goodwill.value_pct / 2, 2)  # the share binds below the USD cap
    facts = make_facts(amount_paid=paid, days_late=0)
    cap = round(paid * goodwill.value_pct / 100, 2)
    assert judge("apply_store_credit", {"kind": "goodwill"}, amount=cap, facts=facts).allowed
    verdict = judge("apply_store_credit", {"kind": "goodwill"}, amount=cap + 0.01, facts=facts)
    assert not verdict.allowed and "store_credit.goodwill" in verdict.rule


def test_goodwill_cap_in_usd(judge, make_facts, policy) -> None:
    goodwill = policy.store_credit.goodwill
    facts = make_facts(amount_paid=goodwill.max_usd * 100 / goodwill.value_pct * 3, days_late=0)
    ok = judge("apply_store_credit", {"kind": "goodwill"}, amount=goodwill.max_usd, facts=facts)
    assert ok.allowed and ok.automatic
    assert not judge("apply_store_credit", {"kind": "goodwill"}, amount=goodwill.max_usd + 0.01, facts=facts).allowed


def test_goodwill_needs_its_severity_and_transit(judge, make_facts, policy) -> None:
    assert policy.store_credit.goodwill.min_severity == "critical"
    warning = judge(
        "apply_store_credit", {"kind": "goodwill"}, amount=5, facts=make_facts(days_late=0, severity="warning")
    )
    assert not warning.allowed and any("min_severity" in v for v in warning.violations)
    delivered = make_facts(days_late=0, delivery_date=make_facts().promised_delivery_date, order_status="delivered")
    assert not judge("apply_store_credit", {"kind": "goodwill"}, amount=5, facts=delivered).allowed
    assert judge("apply_store_credit", amount=5, facts=make_facts(days_late=0)).allowed  # kind inferred: goodwill


def test_store_credit_instead_of_refund_adds_the_bonus(judge, make_facts, policy) -> None:
    bonus = policy.store_credit.bonus_pct
    refund_cap = round(400 * _tier_pct(policy, 4) / 100, 2)
    cap = round(refund_cap * (1 + bonus / 100), 2)
    facts = make_facts(amount_paid=400.0)
    verdict = judge("apply_store_credit", {"kind": "refund_alternative"}, amount=cap, facts=facts)
    assert verdict.allowed and f"store_credit.bonus_pct: the refund plus {bonus:g}%" in verdict.rule
    assert not judge("apply_store_credit", {"kind": "refund_alternative"}, amount=cap + 0.01, facts=facts).allowed
    assert judge("apply_store_credit", amount=cap, facts=facts).allowed  # kind inferred: late order


def test_store_credit_for_external_and_unknown_customers(judge, make_facts) -> None:
    external = make_facts(customer_ref="C00123", customer_id=None, days_late=0)
    assert judge("apply_store_credit", {"kind": "goodwill"}, amount=5, facts=external).allowed
    nobody = make_facts(customer_ref=None, customer_id=None, days_late=0)
    assert not judge("apply_store_credit", {"kind": "goodwill"}, amount=5, facts=nobody).allowed
    assert not judge("apply_store_credit", {"kind": "voucher"}, amount=5).allowed


def test_fraud_review_takes_refunds_and_credit_out_of_automation(judge, make_history, make_facts, policy) -> None:
    review = policy.fraud_review
    below = make_history(compensation_requests_in_window=review.refund_requests_over - 1)
    assert judge("issue_refund", amount=20, history=below).automatic
    under = make_history(compensation_requests_in_window=review.refund_requests_over)
    refund = judge("issue_refund", amount=20, history=under)
    assert refund.allowed and not refund.automatic and refund.required_role == "approver"
    assert "fraud_review.refund_requests_over" in refund.rule
    credit = judge("apply_store_credit", {"kind": "goodwill"}, amount=5, facts=make_facts(days_late=0), history=under)
    assert credit.allowed and not credit.automatic
    assert judge("create_ticket", {"team": "operations", "priority": "P1", "summary": "x"}, history=under).automatic
