"""Payment tools: refund eligibility (read), and the refund and store-credit ledger writes.

:func:`check_refund_eligibility` answers with the same numbers the guardrail judges a refund by
(:func:`tools.guardrails.refund_eligibility`): the tier, the largest refund, the store-credit equivalent and the
reasons an order is not eligible. :func:`issue_refund` and :func:`apply_store_credit` write one ledger row each and
are called only by :func:`tools.executor.execute`; both re-check, under a lock on the order, that the order has not
reached ``refunds.max_compensations_per_order`` in the meantime.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rag.policy import severity_at_least
from tools.deps import current
from tools.guardrails import refund_eligibility, severity_of
from tools.ledger import Attribution, Guard, LedgerWrite, count, insert_once
from tools.orders import OrderFacts, customer_history, require_order, utc_now


@dataclass(frozen=True)
class RefundCheck:
    """What the payment specialist may offer on an order."""

    order_id: str
    eligible: bool
    tier: str | None
    days_late: int
    amount_paid: float | None
    refund_pct: float
    max_amount: float  # the largest refund in USD (0 when not eligible)
    min_partial_refund: float
    max_store_credit: float  # the largest refund plus store_credit.bonus_pct
    goodwill_max: float | None  # the goodwill credit open to a critical order in transit, else None
    required_role_for_max: str | None  # least role that may approve the largest refund
    reasons: tuple[str, ...]
    rules: tuple[str, ...]


async def check_refund_eligibility(order_id: str, *, now: datetime | None = None) -> RefundCheck:
    """The refund tier, largest refund and credit, and why an order is not eligible."""
    now = now or utc_now()
    facts = await require_order(order_id, now=now)
    history = await customer_history(facts.customer_ref, order_id, now=now)
    policy = current().policy
    elig = refund_eligibility(facts, history, policy, now=now)
    credit = policy.store_credit
    goodwill = None
    open_for_goodwill = (
        severity_at_least(severity_of(facts, {}), credit.goodwill.min_severity)
        and not facts.delivered
        and facts.payment_status in policy.refunds.eligible_payment_status
        and history.compensations_on_order < policy.refunds.max_compensations_per_order
    )
    if open_for_goodwill and facts.amount_paid:
        goodwill = round(min(facts.amount_paid * credit.goodwill.value_pct / 100, credit.goodwill.max_usd), 2)
    role = policy.approval.required_role("refund", elig.max_amount) if elig.eligible and elig.max_amount > 0 else None
    return RefundCheck(
        order_id=order_id,
        eligible=elig.eligible,
        tier=elig.tier,
        days_late=elig.days_late,
        amount_paid=elig.amount_paid,
        refund_pct=elig.refund_pct,
        max_amount=elig.max_amount if elig.eligible else 0.0,
        min_partial_refund=elig.min_amount,
        max_store_credit=round(elig.max_amount * (1 + credit.bonus_pct / 100), 2) if elig.eligible else 0.0,
        goodwill_max=goodwill,
        required_role_for_max=role,
        reasons=elig.reasons,
        rules=elig.rules,
    )


def _compensation_guard(order_id: str) -> Guard:
    most = current().policy.refunds.max_compensations_per_order

    async def within_limit(conn: Any) -> str | None:
        done = await count(
            conn,
            "SELECT (SELECT count(*) FROM refunds WHERE order_id = %(o)s)"
            " + (SELECT count(*) FROM store_credits WHERE order_id = %(o)s)",
            {"o": order_id},
        )
        return None if done <= most else f"refunds.max_compensations_per_order: {most}; order {order_id} has {done}"

    return Guard(lock=f"compensation:{order_id}", check=within_limit)


async def issue_refund(facts: OrderFacts, *, amount: float, reason: str, attribution: Attribution) -> LedgerWrite:
    """Record a refund of ``amount`` USD to the original payment method."""
    values = {
        "order_id": facts.order_id,
        "customer_ref": facts.customer_ref,
        "amount": round(amount, 2),
        "reason": reason,
        "details": {"days_late": facts.days_late, "amount_paid": facts.amount_paid},
    }
    return await insert_once("refunds", values, attribution, guard=_compensation_guard(facts.order_id))


async def apply_store_credit(
    facts: OrderFacts, *, amount: float, kind: str, reason: str, attribution: Attribution, now: datetime
) -> LedgerWrite:
    """Record a store credit (goodwill, or instead of a refund) expiring after ``store_credit.expiry_days``."""
    expiry = current().policy.store_credit.expiry_days
    values = {
        "customer_id": facts.customer_id,
        "customer_ref": facts.customer_ref,
        "order_id": facts.order_id,
        "amount": round(amount, 2),
        "kind": kind,
        "reason": reason,
        "expires_on": (now + timedelta(days=expiry)).date(),
        "details": {"days_late": facts.days_late},
    }
    return await insert_once("store_credits", values, attribution, guard=_compensation_guard(facts.order_id))
