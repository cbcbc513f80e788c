"""Guardrails: every proposed action checked against the policy file, by one pure function.

:func:`check_action` is what the deviation graph calls before executing anything and what the evaluation scores
proposals with. It reads only its arguments (no I/O): the action, the order's facts, the customer's history, the
policy and the time. It returns a :class:`~tools.actions.Verdict`:

- ``allowed=False`` with ``violations`` when the policy forbids the action whatever the role (a refund over the
  tier, a second apology inside the window, an upgrade path that does not exist ...);
- else ``required_role``, the least role that may execute it (amount limits per role, or the action's minimum
  role), and ``automatic`` when that is within the automation role (executes without a person);
- ``rule``: the policy rules applied, with their paths and numbers, which the ledger records.

With ``decider_role`` the verdict answers whether that role may execute the action (after a person edited it).

The helpers the read tools share with it (:func:`refund_eligibility`, :func:`shipping_options`,
:func:`disclosure_problems`, :func:`quiet_hours_end`) are pure as well, so a tool never says something the
guardrail would refuse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, cast

from rag.policy import ROLES, SEVERITY_RANK, Policy, Role, Severity, severity_at_least
from tools.actions import ACTION_NAMES, ACTION_SCOPES, POLICY_ACTIONS, ProposedAction, Verdict
from tools.orders import CustomerHistory, OrderFacts

CENT: Final = 0.005  # amounts are compared to the cent
MESSAGE_KINDS: Final = (
    "delay_notice",
    "apology",
    "sms_update",
    "status_update",
    "upgrade_notice",
    "refund_confirmation",
    "store_credit_offer",
)
TRANSACTIONAL_KINDS: Final = ("upgrade_notice", "refund_confirmation", "store_credit_offer")
KIND_ALIASES: Final[dict[str, str]] = {
    "delay": "delay_notice",
    "notice": "delay_notice",
    "update": "status_update",
    "reschedule": "status_update",
    "upgrade": "upgrade_notice",
    "refund": "refund_confirmation",
    "store_credit": "store_credit_offer",
    "credit": "store_credit_offer",
    "sms": "sms_update",
    "delay_apology": "apology",
}
"""Short names a proposal may give a message kind (``args.kind``, else ``args.template``)."""
INTERACTION_CHANNELS: Final = ("email", "sms", "phone", "chat", "note")
INTERACTION_DIRECTIONS: Final = ("inbound", "outbound", "internal")
DEFAULT_TEAM: Final = "operations"
_APOLOGY = re.compile(r"\b(sorry|apolog\w*)\b", re.IGNORECASE)


# --------------------------------------------------------------------------- small helpers


def usd(amount: float | None) -> str:
    """``50 USD``, ``12.50 USD``, ``no limit``."""
    if amount is None or math.isinf(amount):
        return "no limit"
    text = f"{amount:,.2f}"
    return (text[:-3] if text.endswith(".00") else text) + " USD"


def pct(value: float) -> str:
    return f"{value:g}%"


def number(value: Any) -> float | None:
    """A finite float from an argument, else None (booleans and junk are not numbers)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def text_arg(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    return value.strip() if isinstance(value, str) else ""


def severity_of(facts: OrderFacts, args: dict[str, Any]) -> str:
    """The deviation's severity: the order's (scored) one, else the one the proposal states, else none."""
    for value in (facts.severity, args.get("severity")):
        if isinstance(value, str) and value.lower() in SEVERITY_RANK:
            return value.lower()
    return "none"


def role_name(role: str) -> str:
    for name in ROLES:
        if name == role.strip().lower():
            return name
    raise ValueError(f"decider_role: unknown role {role!r}; allowed: {', '.join(ROLES)}")


def message_kind(args: dict[str, Any]) -> str:
    """The message kind of a ``send_notification`` proposal (``kind``, else ``template``; default status_update)."""
    raw = (text_arg(args, "kind") or text_arg(args, "template")).lower().replace("-", "_")
    return KIND_ALIASES.get(raw, raw) or "status_update"


def is_apology(kind: str, subject: str, body: str) -> bool:
    """An apology is a message of kind ``apology`` or one that says sorry / apologises."""
    return kind == "apology" or bool(_APOLOGY.search(subject) or _APOLOGY.search(body))


# --------------------------------------------------------------------------- what may not be said

_DISCLOSURE_PATTERNS: Final[dict[str, tuple[str, ...]]] = {
    "probability": (
        r"\bprobabilit(?:y|ies)\b",
        r"\b\d{1,3}(?:\.\d+)?\s?%\s+(?:chance|likely|likelihood|risk|probability)\b",
        r"\b(?:risk|delay|lateness)\s+score\b",
        r"\bmodel\s+(?:predicts|prediction|score)\b",
    ),
    "severity": (r"\bseverity\b",),
    "penalt": (r"\bpenalt(?:y|ies)\b", r"\bsla\s+claims?\b"),
    "other customers": (r"\bother\s+customers?(?:'s|s'|s)?\b",),
}


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u2019", "'").replace("\u2018", "'")).strip().lower()


def disclosure_problems(text: str, policy: Policy) -> list[str]:
    """What ``text`` discloses of ``communication.never_disclose`` (the terms, and plain ways of saying them)."""
    said = _normalise(text)
    problems = []
    for term in policy.communication.never_disclose:
        wanted = _normalise(term)
        hits = [wanted] if wanted in said else []
        for key, patterns in _DISCLOSURE_PATTERNS.items():
            if key in wanted:
                hits += [m.group(0) for p in patterns for m in [re.search(p, said)] if m]
        if hits:
            problems.append(f"communication.never_disclose: the message discloses {term} ({hits[0]!r})")
    fraud = re.search(r"\bfraud\b", said)
    if fraud:
        problems.append(f"fraud_review: never tell the customer about a fraud review ({fraud.group(0)!r})")
    return problems


def quiet_hours_end(now: datetime, policy: Policy) -> datetime | None:
    """When quiet hours that contain ``now`` end (``now``'s own time zone is the customer's); None outside."""
    quiet = policy.communication.quiet_hours
    if not quiet.contains(now.hour):
        return None
    end = now.replace(hour=quiet.end_hour, minute=0, second=0, microsecond=0)
    return end if end > now else end + timedelta(days=1)


# --------------------------------------------------------------------------- refunds


@dataclass(frozen=True)
class RefundEligibility:
    """Whether an order may be compensated now, the tier, and the largest refund (see the refund policy)."""

    eligible: bool
    tier: str | None
    refund_pct: float  # the largest share of the amount paid (tier, capped for high-discount orders)
    max_amount: float  # refund_pct of the amount paid, in USD
    min_amount: float  # the smallest partial refund (refunds.partial_refund_pct.min of the amount paid)
    full_refund_allowed: bool
    amount_paid: float | None
    days_late: int
    days_since_promised: int | None
    reasons: tuple[str, ...]  # why it is not eligible (empty when eligible)
    rules: tuple[str, ...]  # the rules that set the numbers


def refund_eligibility(
    facts: OrderFacts, history: CustomerHistory, policy: Policy, *, now: datetime
) -> RefundEligibility:
    """Eligibility (payment status, lateness, claim window, one compensation per order) and the tier's cap."""
    refunds = policy.refunds
    reasons: list[str] = []
    rules: list[str] = []
    status = facts.payment_status
    if status not in refunds.eligible_payment_status:
        reasons.append(
            f"refunds.eligible_payment_status: {', '.join(refunds.eligible_payment_status)}; "
            f"this order's payment is {status or 'unknown'}"
        )
    paid = facts.amount_paid
    if paid is None or paid <= 0:
        reasons.append("refunds: compensation is a share of the amount paid, and this order's is unknown")
    tier = refunds.tier_for(facts.days_late) if facts.days_late > 0 else None
    if tier is None:
        reasons.append("refunds: no refund before the promised delivery date has passed (the order is not late)")
    today = min(now.date(), facts.as_of) if facts.as_of else now.date()  # a seeded order: its snapshot's day
    since = (today - facts.promised_delivery_date).days if facts.promised_delivery_date else None
    if since is not None and since > refunds.claim_window_days:
        reasons.append(
            f"refunds.claim_window_days: {refunds.claim_window_days}; the promised date was {since} days ago"
        )
    most = refunds.max_compensations_per_order
    if history.compensations_on_order >= most:
        reasons.append(
            f"refunds.max_compensations_per_order: {most}; this order already has "
            f"{history.compensations_on_order} (refund or store credit)"
        )
    share = 0.0
    if tier is not None:
        share = tier.refund_pct
        upper = f"-{tier.max_days_late}" if tier.max_days_late is not None else " or more"
        rules.append(
            f"refunds.tiers.{tier.name}: {pct(tier.refund_pct)} of the amount paid for "
            f"{tier.min_days_late}{upper} days late"
        )
        rule = refunds.high_discount
        if (facts.discount_offered or 0.0) > rule.discount_over_pct:
            share = min(share, rule.max_refund_pct)
            rules.append(
                f"refunds.high_discount: orders discounted over {pct(rule.discount_over_pct)} get at most "
                f"{pct(rule.max_refund_pct)}"
            )
    base = paid if paid is not None and paid > 0 else 0.0
    return RefundEligibility(
        eligible=not reasons,
        tier=tier.name if tier else None,
        refund_pct=share,
        max_amount=round(base * share / 100, 2),
        min_amount=round(base * refunds.partial_refund_pct.min / 100, 2),
        full_refund_allowed=share >= 100,
        amount_paid=paid,
        days_late=facts.days_late,
        days_since_promised=since,
        reasons=tuple(reasons),
        rules=tuple(rules),
    )


# --------------------------------------------------------------------------- shipping


@dataclass(frozen=True)
class ShippingOption:
    """One way to speed a parcel up: a mode upgrade along a policy path, or priority handling on Road."""

    kind: str  # mode_upgrade | priority_handling
    from_mode: str
    to_mode: str
    fee: float
    rule: str


def shipping_options(facts: OrderFacts, severity: str, policy: Policy) -> tuple[list[ShippingOption], list[str]]:
    """The upgrades open to this order now (best first) and, when none, why not."""
    upgrade = policy.shipping.upgrade
    mode, weight = facts.mode_of_shipment, facts.weight_kg
    if mode not in policy.shipping.modes or weight is None or weight <= 0:
        return [], ["the order's shipping mode or weight is unknown"]
    if facts.delivered:
        return [], ["the order is already delivered"]
    if not severity_at_least(severity, upgrade.min_severity):
        return [], [f"shipping.upgrade.min_severity: {upgrade.min_severity}; this deviation is {severity}"]
    options = [
        ShippingOption("mode_upgrade", p.from_mode, p.to_mode, p.cost_usd(weight), _path_rule(p))
        for p in policy.shipping.upgrade_options(mode, weight, severity)
    ]
    light = _light_road_limit(policy)
    if mode == "Road" and light is not None and weight <= light:
        fee = policy.shipping.priority_handling_fee_usd
        options.append(
            ShippingOption(
                "priority_handling",
                "Road",
                "Road",
                fee,
                f"shipping.priority_handling_fee_usd: {usd(fee)} for Road parcels of {light:g} kg or less",
            )
        )
    if not options:
        return [], [f"no upgrade path from {mode} for {weight:g} kg at {severity} severity (shipping.upgrade.paths)"]
    return options, []


def _path_rule(path: Any) -> str:
    return (
        f"shipping.upgrade.paths.{path.from_mode}_to_{path.to_mode}: over {path.min_weight_kg:g} kg up to "
        f"{path.max_weight_kg:g} kg, {path.min_severity} or worse, {usd(path.base_fee_usd)} + "
        f"{usd(path.per_kg_usd)}/kg"
    )


def _light_road_limit(policy: Policy) -> float | None:
    """Road parcels at or under the Road -> Flight path's lower weight get priority handling instead."""
    return next(
        (p.min_weight_kg for p in policy.shipping.upgrade.paths if p.from_mode == "Road" and p.to_mode == "Flight"),
        None,
    )


# --------------------------------------------------------------------------- the checks, one per action


@dataclass
class _Check:
    """What one action's rules found: the approval key, the amount judged, rules applied, violations."""

    policy_action: str
    amount: float | None = None
    rules: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    send_after: datetime | None = None


@dataclass(frozen=True)
class _Context:
    action: ProposedAction
    facts: OrderFacts
    history: CustomerHistory
    policy: Policy
    now: datetime

    @property
    def args(self) -> dict[str, Any]:
        return self.action.args if isinstance(self.action.args, dict) else {}

    @property
    def severity(self) -> str:
        return severity_of(self.facts, self.args)

    def amount(self, check: _Check) -> float | None:
        """The proposal's amount (``amount`` field, else ``args.amount``); both given must agree."""
        field_amount, arg_amount = self.action.amount, number(self.args.get("amount"))
        if field_amount is not None and arg_amount is not None and abs(field_amount - arg_amount) > CENT:
            check.violations.append(f"amount: {usd(field_amount)} disagrees with args.amount {usd(arg_amount)}")
        return field_amount if field_amount is not None else arg_amount


def _check_refund(ctx: _Context) -> _Check:
    check = _Check(POLICY_ACTIONS["issue_refund"])
    amount = ctx.amount(check)
    check.amount = amount
    elig = refund_eligibility(ctx.facts, ctx.history, ctx.policy, now=ctx.now)
    check.rules += elig.rules
    check.violations += elig.reasons
    if amount is None or amount <= 0 or not elig.eligible:
        return check
    paid = elig.amount_paid or 0.0
    rng = ctx.policy.refunds.partial_refund_pct
    if round(amount, 2) > elig.max_amount + CENT:
        check.violations.append(
            f"refund of {usd(amount)} is over the {pct(elig.refund_pct)} cap of the amount paid "
            f"{usd(paid)}: at most {usd(elig.max_amount)}"
        )
        return check
    full = elig.full_refund_allowed and abs(amount - paid) <= CENT
    if not full:
        check.rules.append(f"refunds.partial_refund_pct: {pct(rng.min)} to {pct(rng.max)} of the amount paid")
        low, high = round(paid * rng.min / 100, 2), round(paid * rng.max / 100, 2)
        if round(amount, 2) < low - CENT or round(amount, 2) > high + CENT:
            check.violations.append(
                f"refunds.partial_refund_pct: a partial refund is {pct(rng.min)} to {pct(rng.max)} of the amount "
                f"paid ({usd(low)} to {usd(high)}), or the full amount in a 100% tier; proposed {usd(amount)}"
            )
    return check


def upgrade_kind(args: dict[str, Any], facts: OrderFacts) -> tuple[str, str]:
    """An upgrade's kind and target mode: ``args.kind``, else priority handling when ``to_mode`` is the order's own
    mode (or missing), else a mode upgrade."""
    to_mode = text_arg(args, "to_mode").capitalize()
    kind = text_arg(args, "kind").lower()
    if not kind:
        kind = "priority_handling" if to_mode in ("", facts.mode_of_shipment) else "mode_upgrade"
    return kind, to_mode or (facts.mode_of_shipment or "")


def credit_kind(args: dict[str, Any], facts: OrderFacts) -> str:
    """A store credit's kind: ``args.kind``, else goodwill for an order not late yet, refund_alternative after."""
    return text_arg(args, "kind").lower() or ("goodwill" if facts.days_late == 0 else "refund_alternative")


def _check_store_credit(ctx: _Context) -> _Check:
    check = _Check(POLICY_ACTIONS["apply_store_credit"])
    amount = check.amount = ctx.amount(check)
    policy, facts = ctx.policy, ctx.facts
    credit = policy.store_credit
    if facts.customer_ref is None and facts.customer_id is None:
        check.violations.append("store credit needs a known customer; this order has none")
    kind = credit_kind(ctx.args, facts)
    if kind == "goodwill":
        goodwill = credit.goodwill
        check.rules.append(
            f"store_credit.goodwill: {pct(goodwill.value_pct)} of the amount paid, at most "
            f"{usd(goodwill.max_usd)}, for {goodwill.min_severity} orders in transit"
        )
        if facts.payment_status not in policy.refunds.eligible_payment_status:
            check.violations.append(
                f"refunds.eligible_payment_status: {', '.join(policy.refunds.eligible_payment_status)}"
                f"; this order's payment is {facts.payment_status or 'unknown'}"
            )
        if not severity_at_least(ctx.severity, goodwill.min_severity):
            check.violations.append(
                f"store_credit.goodwill.min_severity: {goodwill.min_severity}; this deviation is {ctx.severity}"
            )
        if facts.delivered:
            check.violations.append("store_credit.goodwill: only while the order is in transit; it was delivered")
        most = policy.refunds.max_compensations_per_order
        if ctx.history.compensations_on_order >= most:
            check.violations.append(
                f"refunds.max_compensations_per_order: {most}; this order already has "
                f"{ctx.history.compensations_on_order}"
            )
        paid = facts.amount_paid
        if paid is None or paid <= 0:
            check.violations.append("store_credit.goodwill: a share of the amount paid, and this order's is unknown")
        elif amount is not None and amount > 0:
            cap = round(min(paid * goodwill.value_pct / 100, goodwill.max_usd), 2)
            if round(amount, 2) > cap + CENT:
                check.violations.append(
                    f"goodwill credit of {usd(amount)} is over the cap of {usd(cap)} "
                    f"({pct(goodwill.value_pct)} of {usd(paid)}, at most "
                    f"{usd(goodwill.max_usd)})"
                )
    elif kind == "refund_alternative":
        elig = refund_eligibility(facts, ctx.history, policy, now=ctx.now)
        check.rules += [
            *elig.rules,
            f"store_credit.bonus_pct: the refund plus {pct(credit.bonus_pct)}, expires after {credit.expiry_days} days",
        ]
        check.violations += elig.reasons
        if elig.eligible and amount is not None and amount > 0:
            cap = round(elig.max_amount * (1 + credit.bonus_pct / 100), 2)
            if round(amount, 2) > cap + CENT:
                check.violations.append(
                    f"store credit of {usd(amount)} is over the refund cap {usd(elig.max_amount)} "
                    f"plus the {pct(credit.bonus_pct)} bonus: at most {usd(cap)}"
                )
    else:
        check.violations.append(
            f"args.kind: {kind!r} is not a store credit kind; allowed: goodwill, refund_alternative"
        )
    return check


def _check_upgrade(ctx: _Context) -> _Check:
    check = _Check(POLICY_ACTIONS["upgrade_shipping_mode"])
    facts, policy = ctx.facts, ctx.policy
    most = policy.shipping.upgrade.max_per_order
    check.rules.append(f"shipping.upgrade.max_per_order: {most}")
    if ctx.history.upgrades_on_order >= most:
        check.violations.append(
            f"shipping.upgrade.max_per_order: {most}; this order was already upgraded "
            f"{ctx.history.upgrades_on_order} time(s): reschedule or escalate instead"
        )
    kind, to_mode = upgrade_kind(ctx.args, facts)
    options, why_not = shipping_options(facts, ctx.severity, policy)
    chosen = next(
        (o for o in options if o.kind == kind and (kind == "priority_handling" or o.to_mode == to_mode)), None
    )
    proposed = ctx.amount(check)
    if chosen is None:
        check.amount = proposed
        reasons = "; ".join(why_not) or "open options: " + ", ".join(f"{o.kind} to {o.to_mode}" for o in options)
        target = "priority handling" if kind == "priority_handling" else f"{facts.mode_of_shipment} -> {to_mode or '?'}"
        check.violations.append(f"no shipping upgrade {target} for this order ({reasons})")
        return check
    check.amount = chosen.fee
    check.rules.append(chosen.rule)
    if proposed is not None and abs(proposed - chosen.fee) > CENT:
        check.violations.append(f"the fee of this upgrade is {usd(chosen.fee)} by its path, not {usd(proposed)}")
    return check


def _check_reschedule(ctx: _Context) -> _Check:
    facts, policy = ctx.facts, ctx.policy
    carrier_id = text_arg(ctx.args, "carrier_id")
    check = _Check("carrier_reassignment" if carrier_id else POLICY_ACTIONS["reschedule_shipment"])
    if facts.delivered:
        check.violations.append("the order is already delivered: nothing to reschedule")
    new_date = text_arg(ctx.args, "new_date")
    if new_date:
        try:
            if date.fromisoformat(new_date[:10]) < ctx.now.date():
                check.violations.append(f"args.new_date: {new_date} is in the past")
        except ValueError:
            check.violations.append(f"args.new_date: {new_date!r} is not a date (YYYY-MM-DD)")
    if carrier_id:
        carrier = next((c for c in policy.carriers if c.id == carrier_id.lower()), None)
        if carrier is None:
            check.violations.append(
                f"args.carrier_id: unknown carrier {carrier_id!r}; allowed: {', '.join(c.id for c in policy.carriers)}"
            )
        else:
            check.rules.append(f"carriers.{carrier.id}: {carrier.mode}, up to {carrier.max_weight_kg:g} kg")
            if carrier.mode != facts.mode_of_shipment:
                check.violations.append(
                    f"a reassignment keeps the mode: {carrier.name} ships by {carrier.mode}, "
                    f"the order by {facts.mode_of_shipment}"
                )
            if facts.weight_kg is not None and facts.weight_kg > carrier.max_weight_kg:
                check.violations.append(
                    f"carriers.{carrier.id}.max_weight_kg: {carrier.max_weight_kg:g}; the parcel "
                    f"weighs {facts.weight_kg:g} kg"
                )
    return check


def _check_transfer(ctx: _Context) -> _Check:
    check = _Check(POLICY_ACTIONS["transfer_warehouse"])
    facts, warehouses = ctx.facts, ctx.policy.warehouses
    limit = warehouses.transfer_backlog_hours
    check.rules.append(f"warehouses.transfer_backlog_hours: a block's backlog must exceed {limit} hours")
    to_block = text_arg(ctx.args, "to_block").upper()
    if to_block not in warehouses.blocks:
        check.violations.append(f"args.to_block: {to_block or 'missing'}; allowed: {', '.join(warehouses.blocks)}")
    elif to_block == facts.warehouse_block:
        check.violations.append(f"args.to_block: the order is already in block {to_block}")
    if facts.shipped:
        check.violations.append("the order has left its warehouse block: a transfer is only for waiting orders")
    backlog = facts.block_backlog_hours
    if backlog is None:
        check.violations.append(f"the backlog of block {facts.warehouse_block or '?'} is unknown")
    elif backlog <= limit:
        check.violations.append(
            f"warehouses.transfer_backlog_hours: {limit}; block {facts.warehouse_block} has "
            f"{backlog:g} hours of backlog"
        )
    return check


def _check_notification(ctx: _Context) -> _Check:
    check = _Check(POLICY_ACTIONS["send_notification"])
    policy, args = ctx.policy, ctx.args
    comm = policy.communication
    channel = text_arg(args, "channel").lower()
    kind = message_kind(args)
    subject, body = text_arg(args, "subject"), text_arg(args, "body")
    if ctx.facts.customer_ref is None and ctx.facts.customer_id is None:
        check.violations.append("the order has no known customer to write to")
    if kind not in MESSAGE_KINDS:
        check.violations.append(f"args.kind: {kind!r}; allowed: {', '.join(MESSAGE_KINDS)}")
    if channel not in ("email", "sms"):
        check.violations.append(f"args.channel: {channel or 'missing'}; allowed: email, sms")
    elif kind in TRANSACTIONAL_KINDS:
        if channel != "email":
            check.violations.append(f"a {kind.replace('_', ' ')} is sent by email (the approved template)")
    else:
        allowed = comm.channels_for(ctx.severity)
        check.rules.append(f"communication.channels.{ctx.severity}: {', '.join(allowed) or 'none'}")
        if channel not in allowed:
            check.violations.append(
                f"communication.channels.{ctx.severity}: {', '.join(allowed) or 'no proactive message'}; not {channel}"
            )
    if not body:
        check.violations.append("args.body: the message is empty")
    if channel == "sms":
        check.rules.append(f"communication.sms_max_chars: {comm.sms_max_chars}")
        if len(body) > comm.sms_max_chars:
            check.violations.append(f"communication.sms_max_chars: {comm.sms_max_chars}; the SMS has {len(body)}")
    elif channel == "email":
        check.rules.append(
            f"communication.email_body_max_words: {comm.email_body_max_words}; subject at most "
            f"{comm.email_subject_max_chars} characters"
        )
        if len(subject) > comm.email_subject_max_chars:
            check.violations.append(
                f"communication.email_subject_max_chars: {comm.email_subject_max_chars}; the subject has {len(subject)}"
            )
        words = len(body.split())
        if words > comm.email_body_max_words:
            check.violations.append(
                f"communication.email_body_max_words: {comm.email_body_max_words}; the body has {words} words"
            )
    check.violations += disclosure_problems(f"{subject}\n{body}", policy)
    if is_apology(kind, subject, body):
        rule = comm.apology
        check.rules.append(
            f"communication.apology: at most {rule.max_per_customer} per customer in {rule.window_hours} hours"
        )
        if ctx.history.apologies_in_window >= rule.max_per_customer:
            check.violations.append(
                f"communication.apology: {rule.max_per_customer} per customer in "
                f"{rule.window_hours} hours already sent; send a status update without an "
                f"apology instead"
            )
    if channel == "sms":
        check.send_after = quiet_hours_end(ctx.now, policy)
        if check.send_after is not None:
            quiet = comm.quiet_hours
            check.rules.append(
                f"communication.quiet_hours: no SMS from {quiet.start_hour}:00 to {quiet.end_hour}:00; "
                f"queued until {check.send_after.isoformat(timespec='minutes')}"
            )
    return check


def _priority_rank(policy: Policy) -> dict[str, int]:
    """Priorities from most to least urgent (by their resolve target)."""
    ordered = sorted(policy.escalation.response_targets.items(), key=lambda item: item[1].resolve_hours)
    return {name: rank for rank, (name, _) in enumerate(ordered)}


def _check_priority(ctx: _Context, check: _Check, priority: str) -> None:
    escalation = ctx.policy.escalation
    ranks = _priority_rank(ctx.policy)
    if priority not in ranks:
        check.violations.append(f"args.priority: {priority or 'missing'}; allowed: {', '.join(ranks)}")
        return
    expected = escalation.priorities.get(cast(Severity, ctx.severity))
    if expected is not None:
        target = escalation.response_targets[expected]
        check.rules.append(
            f"escalation.priorities.{ctx.severity}: {expected} (acknowledge in "
            f"{target.acknowledge_hours} h, resolve in {target.resolve_hours} h)"
        )
        if ranks[priority] > ranks[expected]:
            check.violations.append(f"escalation.priorities.{ctx.severity}: {expected}; {priority} is less urgent")


def _check_ticket(ctx: _Context) -> _Check:
    check = _Check(POLICY_ACTIONS["create_ticket"])
    escalation = ctx.policy.escalation
    team = text_arg(ctx.args, "team")
    calls = ctx.facts.customer_care_calls or 0
    if not team:
        check.violations.append("args.team: the team that handles the ticket is required")
    elif calls > escalation.care_calls_over:
        route = escalation.routes["care_calls"]
        check.rules.append(f"escalation.care_calls_over: {escalation.care_calls_over} -> {route}")
        if team != route:
            check.violations.append(
                f"escalation.care_calls_over: {escalation.care_calls_over}; the customer called {calls} times about "
                f"this order, so the ticket goes to {route}, not {team}"
            )
    if not text_arg(ctx.args, "summary"):
        check.violations.append("args.summary: a ticket needs a summary")
    _check_priority(ctx, check, text_arg(ctx.args, "priority").upper())
    return check


def _check_assign(ctx: _Context) -> _Check:
    check = _Check(POLICY_ACTIONS["assign_owner"])
    if not text_arg(ctx.args, "owner"):
        check.violations.append("args.owner: who takes the order over (a team or a person) is required")
    return check


def _check_flag(ctx: _Context) -> _Check:
    check = _Check(POLICY_ACTIONS["flag_priority"])
    _check_priority(ctx, check, text_arg(ctx.args, "priority").upper())
    return check


def _check_interaction(ctx: _Context) -> _Check:
    check = _Check(POLICY_ACTIONS["log_interaction"])
    channel = text_arg(ctx.args, "channel").lower() or "note"
    direction = text_arg(ctx.args, "direction").lower() or "internal"
    if channel not in INTERACTION_CHANNELS:
        check.violations.append(f"args.channel: {channel!r}; allowed: {', '.join(INTERACTION_CHANNELS)}")
    if direction not in INTERACTION_DIRECTIONS:
        check.violations.append(f"args.direction: {direction!r}; allowed: {', '.join(INTERACTION_DIRECTIONS)}")
    if not text_arg(ctx.args, "summary"):
        check.violations.append("args.summary: what happened is required")
    return check


_CHECKS: Final[dict[str, Callable[[_Context], _Check]]] = {
    "reschedule_shipment": _check_reschedule,
    "upgrade_shipping_mode": _check_upgrade,
    "transfer_warehouse": _check_transfer,
    "send_notification": _check_notification,
    "issue_refund": _check_refund,
    "apply_store_credit": _check_store_credit,
    "create_ticket": _check_ticket,
    "assign_owner": _check_assign,
    "flag_priority": _check_flag,
    "log_interaction": _check_interaction,
}


# --------------------------------------------------------------------------- authority and the verdict


def _limit_rule(policy: Policy, action: str, required: str | None) -> str:
    approval = policy.approval
    auto = approval.automation_role
    limits = approval.amount_limits[action]
    shown = [cast(Role, required)] if required is not None and required != auto else []
    parts = [
        f"{role} up to {usd(limits.limit(role))}" if not math.isinf(limits.limit(role)) else f"{role} without limit"
        for role in [*shown, auto]
    ]
    if shown:
        parts[-1] = f"automation ({parts[-1]})"
    return f"approval.amount_limits.{action}: " + "; ".join(parts)


def _authority(check: _Check, policy: Policy) -> tuple[str | None, str]:
    """The least role for the checked action, and the approval rule that says so (violations appended)."""
    approval = policy.approval
    key = check.policy_action
    if key in approval.amount_limits:
        amount = check.amount
        if amount is None or amount <= 0:
            check.violations.append(f"amount: a positive amount in USD is required for {key}")
            return None, f"approval.amount_limits.{key}"
        required = approval.required_role(key, round(amount, 2))
        if required is None:
            check.violations.append(f"approval.amount_limits.{key}: {usd(amount)} is over every role's limit")
        return required, _limit_rule(policy, key, required)
    if key in approval.action_min_role:
        required = approval.action_min_role[key]
        return required, f"approval.action_min_role.{key}: {required}"
    auto = approval.automation_role
    return auto, f"{key}: an internal record, not in the approval table; the automation role ({auto}) may write it"


def _fraud_review(ctx: _Context, check: _Check, required: str | None) -> str | None:
    """A customer under fraud review gets no automatic refund or credit: a person (at least the role above the
    automation role) decides. The request being judged counts: more than ``refund_requests_over`` with it."""
    review = ctx.policy.fraud_review
    if check.policy_action not in ("refund", "store_credit") or required is None:
        return required
    requests = ctx.history.compensation_requests_in_window + 1
    if requests <= review.refund_requests_over:
        return required
    check.rules.append(
        f"fraud_review.refund_requests_over: {review.refund_requests_over} in {review.window_days} days; this is "
        f"request {requests}: automation issues nothing, {review.reviewer.replace('_', ' ')} reviews"
    )
    person = ROLES[ROLES.index(ctx.policy.approval.automation_role) + 1]
    return max(required, person, key=ROLES.index)


def _common(ctx: _Context) -> list[str]:
    problems = []
    action = ctx.action
    scope = ACTION_SCOPES.get(action.agent)
    if scope is None or action.name not in scope:
        problems.append(f"agent {action.agent!r} may not propose {action.name} (tools.actions.ACTION_SCOPES)")
    order_id = ctx.args.get("order_id")
    if order_id is None or str(order_id) != ctx.facts.order_id:
        problems.append(f"args.order_id: {order_id!r} is not the order under review ({ctx.facts.order_id})")
    if action.amount is not None and (not math.isfinite(action.amount) or action.amount < 0):
        problems.append(f"amount: {action.amount!r} must be a non-negative number")
    return problems


def check_action(
    action: ProposedAction,
    facts: OrderFacts,
    history: CustomerHistory,
    policy: Policy,
    *,
    now: datetime,
    decider_role: str | None = None,
) -> Verdict:
    """Judge one proposed action against the policy (pure; see the module docstring)."""
    decider = role_name(decider_role) if decider_role is not None else None
    if action.name not in ACTION_NAMES:
        problem = f"name: unknown action {action.name!r}; allowed: {', '.join(ACTION_NAMES)}"
        return Verdict(
            action_id=action.action_id,
            allowed=False,
            automatic=False,
            required_role=None,
            policy_action="unknown",
            rule="none",
            reason=f"refused: {problem}",
            violations=(problem,),
            amount=action.amount,
            decider_role=decider,
        )
    ctx = _Context(action, facts, history, policy, now)
    check = _CHECKS[action.name](ctx)
    check.violations[:0] = _common(ctx)
    required, approval_rule = _authority(check, policy)
    required = _fraud_review(ctx, check, required)
    send_after = check.send_after.isoformat() if check.send_after is not None else None

    def verdict(allowed: bool, automatic: bool, role: str | None, reason: str, problems: list[str]) -> Verdict:
        return Verdict(
            action_id=action.action_id,
            allowed=allowed,
            automatic=automatic,
            required_role=role,
            policy_action=check.policy_action,
            rule="; ".join([approval_rule, *check.rules]),
            reason=reason,
            violations=tuple(problems),
            amount=check.amount,
            send_after=send_after,
            decider_role=decider,
        )

    if check.violations:
        return verdict(False, False, None, "refused by policy: " + "; ".join(check.violations), check.violations)
    assert required is not None
    auto = policy.approval.automation_role
    automatic = ROLES.index(required) <= ROLES.index(auto)
    amount_text = f" for {usd(check.amount)}" if check.amount is not None else ""
    if decider is not None and ROLES.index(decider) < ROLES.index(required):
        problem = f"{decider} may not execute {check.policy_action}{amount_text}: it needs {required} ({approval_rule})"
        return verdict(False, automatic, required, problem, [problem])
    if decider is not None:
        reason = f"{decider} may execute {check.policy_action}{amount_text} (least role: {required})"
    elif automatic:
        reason = f"within the automation limits ({auto}): executes without approval"
    else:
        reason = f"{check.policy_action}{amount_text} needs {required} approval: over the automation role ({auto})"
    if check.send_after is not None:
        reason += f"; an SMS in quiet hours: queued until {check.send_after.isoformat(timespec='minutes')}"
    return verdict(True, automatic, required, reason, [])
