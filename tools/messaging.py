"""Customer messaging: drafts from the approved templates (read), the notification outbox and interaction log.

:func:`draft_message` fills the policy's templates (``rag/content/email-templates.md``, rendered from the policy
file, so the numbers in them are the policy's) with the order's facts. A draft respects the communication rules:
the SMS and email length limits, at most one apology per customer in the window (an apology already sent turns
the draft into a delay notice), quiet hours (an SMS draft says when it may go), and it never contains a
``never_disclose`` term such as the delay probability: the order's score is not one of its inputs, and any caller
text that would disclose one is replaced by the template's default.

:func:`send_notification` (an outbox row, ``queued`` until a sender delivers it, ``send_after`` pushed past quiet
hours) and :func:`log_interaction` are written only by :func:`tools.executor.execute`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from rag.documents import load_policy_documents
from rag.policy import SEVERITY_RANK, Policy
from tools.deps import current
from tools.guardrails import (
    KIND_ALIASES,
    MESSAGE_KINDS,
    disclosure_problems,
    is_apology,
    quiet_hours_end,
    shipping_options,
)
from tools.ledger import Attribution, Guard, LedgerWrite, count, insert_once
from tools.orders import OrderFacts, customer_history, require_order, utc_now
from tools.shipment import expected_delivery, order_carrier

TEMPLATE_DOC: Final = "email-templates"
TEMPLATE_SECTIONS: Final[dict[str, str]] = {
    "delay_notice": "delay-notice",
    "status_update": "delay-notice",
    "apology": "delay-apology",
    "sms_update": "sms-update",
    "upgrade_notice": "upgrade-notice",
    "refund_confirmation": "refund-confirmation",
    "store_credit_offer": "store-credit-offer",
}
TONES: Final = ("neutral", "warm", "formal", "apologetic")
APOLOGY_SENTENCE: Final = "We are sorry for the delay."
RULE_CITATIONS: Final = (
    "policy:communication#apology-limit",
    "policy:communication#message-length",
    "policy:communication#tone",
)
DEFAULTS: Final[dict[str, str]] = {
    "action_summary": "working with the carrier to get it to you as soon as possible",  # "We are ..."
    "short_action": "asked the carrier to prioritise it",  # "We have ..."
    "compensation_sentence": "",
}
APOLOGY_ACTION: Final = "asked the carrier to prioritise your parcel"  # the apology says "we have ..."
RESCHEDULE_ACTION: Final = {
    "apology": "rescheduled the delivery with the carrier",
    "other": "rescheduling the delivery with the carrier to get it to you as soon as possible",
}
_FIELD = re.compile(r"\{([a-z_]+)\}")

if set(TEMPLATE_SECTIONS) != set(MESSAGE_KINDS):
    raise RuntimeError("tools.messaging: every message kind needs a template section")


@dataclass(frozen=True)
class Template:
    section_id: str
    citation_id: str
    subject: str | None
    body: str


@dataclass(frozen=True)
class Draft:
    """A message ready to propose as ``send_notification`` (channel, subject, body) with its citations."""

    order_id: str
    kind: str
    channel: str
    subject: str | None
    body: str
    template: str
    citations: tuple[str, ...]
    channels_allowed: tuple[str, ...]  # the proactive channels of the severity (communication.channels)
    send_after: datetime | None = None  # an SMS drafted in quiet hours goes at this time
    warnings: tuple[str, ...] = ()

    def action_args(self) -> dict[str, Any]:
        """The ``send_notification`` arguments of this draft."""
        args: dict[str, Any] = {
            "order_id": self.order_id,
            "channel": self.channel,
            "kind": self.kind,
            "body": self.body,
        }
        if self.subject:
            args["subject"] = self.subject
        return args


_templates: dict[int, dict[str, Template]] = {}


def templates(policy: Policy) -> dict[str, Template]:
    """The approved templates by section id, rendered from ``policy`` (cached per policy object)."""
    cached = _templates.get(id(policy))
    if cached is not None:
        return cached
    document = next((d for d in load_policy_documents(policy) if d.doc_id == TEMPLATE_DOC), None)
    if document is None:
        raise RuntimeError(f"the policy documents have no {TEMPLATE_DOC} document")
    found = {}
    for section in document.sections:
        paragraphs = [p.strip() for p in section.text.split("\n\n") if p.strip()]
        subject_at = next((i for i, p in enumerate(paragraphs) if p.startswith("Subject:")), None)
        if subject_at is not None and subject_at + 1 < len(paragraphs):
            subject, body = paragraphs[subject_at].removeprefix("Subject:").strip(), paragraphs[subject_at + 1]
        elif len(paragraphs) > 1:
            subject, body = None, paragraphs[-1]
        else:
            continue
        found[section.section_id] = Template(section.section_id, section.citation_id, subject, body)
    missing = sorted(set(TEMPLATE_SECTIONS.values()) - set(found))
    if missing:
        raise RuntimeError(f"{TEMPLATE_DOC}: missing template section(s) {', '.join(missing)}")
    _templates[id(policy)] = found
    return found


def _day(value: date | None) -> str:
    return f"{value:%A} {value.day} {value:%B}" if value else "a date we will confirm shortly"


def _fill(text: str, fields: dict[str, str]) -> str:
    return re.sub(r"\s{2,}", " ", _FIELD.sub(lambda m: fields.get(m.group(1), ""), text)).strip()


def _toned(body: str, tone: str, name: str | None) -> str:
    if tone == "formal":
        return re.sub(r"^Hello [^,]*,", f"Dear {name or 'customer'},", body)
    if tone == "warm":
        return f"{body} Thank you for your patience."
    return body


def _fits(channel: str, subject: str | None, body: str, policy: Policy) -> bool:
    comm = policy.communication
    if channel == "sms":
        return len(body) <= comm.sms_max_chars
    return len(subject or "") <= comm.email_subject_max_chars and len(body.split()) <= comm.email_body_max_words


async def _first_name(facts: OrderFacts) -> str | None:
    if facts.customer_id is None:
        return None
    async with current().pool.connection() as conn:
        cur = await conn.execute("SELECT name FROM customers WHERE customer_id = %s", (facts.customer_id,))
        row = await cur.fetchone()
    return str(row["name"]).split()[0] if row else None


def _plan(
    kind: str, tone: str, severity: str, facts: OrderFacts, apologies: int, policy: Policy, new_mode: str | None
) -> tuple[str, bool, str | None, list[str]]:
    """The template kind to use, whether to apologise, the upgrade's new mode, and warnings."""
    warnings: list[str] = []
    rule = policy.communication.apology
    apologise = kind == "apology" or tone == "apologetic"
    if apologise and apologies >= rule.max_per_customer:
        apologise = False
        warnings.append(
            f"an apology already went to this customer in the last {rule.window_hours} hours: "
            "no apology in this message"
        )
        if kind == "apology":
            kind = "delay_notice"
    if apologise and kind in ("delay_notice", "status_update"):
        kind = "apology"
    if kind == "upgrade_notice" and not new_mode:
        options, _ = shipping_options(facts, severity, policy)
        new_mode = next((o.to_mode for o in options if o.kind == "mode_upgrade"), None)
        if new_mode is None:
            kind = "apology" if apologise else "status_update"
            warnings.append("no upgrade path is open to this order: drafted a status update instead")
    return kind, apologise and kind != "apology", new_mode, warnings


async def draft_message(
    order_id: str,
    severity: str,
    kind: str,
    tone: str = "neutral",
    *,
    action_summary: str | None = None,
    short_action: str | None = None,
    compensation_sentence: str | None = None,
    new_mode: str | None = None,
    refund_amount: float | None = None,
    credit_amount: float | None = None,
    now: datetime | None = None,
) -> Draft:
    """A customer message of ``kind`` (delay_notice, apology, sms_update, status_update, upgrade_notice,
    refund_confirmation, store_credit_offer, or a short name: delay, reschedule, upgrade, refund, store_credit)
    for the order, in ``tone`` (neutral, warm, formal, apologetic: an apology when none went out in the window).
    An upgrade notice without ``new_mode`` names the order's best upgrade path. ``action_summary`` completes
    "We are ..." in a notice and "we have ..." in an apology; ``short_action`` completes the SMS's "We have ..."."""
    asked = kind.strip().lower().replace("-", "_")
    kind = KIND_ALIASES.get(asked, asked)
    if kind not in TEMPLATE_SECTIONS:
        raise ValueError(f"kind: {asked!r}; allowed: {', '.join([*TEMPLATE_SECTIONS, *KIND_ALIASES])}")
    if tone not in TONES:
        raise ValueError(f"tone: {tone!r}; allowed: {', '.join(TONES)}")
    if severity not in SEVERITY_RANK:
        raise ValueError(f"severity: {severity!r}; allowed: {', '.join(SEVERITY_RANK)}")
    now = now or utc_now()
    policy = current().policy
    facts = await require_order(order_id, now=now)
    history = await customer_history(facts.customer_ref, order_id, now=now)
    kind, add_apology, new_mode, warnings = _plan(
        kind, tone, severity, facts, history.apologies_in_window, policy, new_mode
    )
    needed = {
        "refund_confirmation": {"refund_amount": refund_amount},
        "store_credit_offer": {"refund_amount": refund_amount, "credit_amount": credit_amount},
    }
    missing = [name for name, value in needed.get(kind, {}).items() if value is None]
    if missing:
        raise ValueError(f"{', '.join(missing)}: required for a {kind.replace('_', ' ')}")
    defaults = {**DEFAULTS, "action_summary": APOLOGY_ACTION if kind == "apology" else DEFAULTS["action_summary"]}
    if asked == "reschedule":
        defaults["action_summary"] = RESCHEDULE_ACTION["apology" if kind == "apology" else "other"]
    free = {}
    for key, value in {
        "action_summary": action_summary,
        "short_action": short_action,
        "compensation_sentence": compensation_sentence,
    }.items():
        text = (value or "").strip()
        text = text if key == "compensation_sentence" else text.rstrip(".")
        if text and disclosure_problems(text, policy):
            warnings.append(f"{key}: replaced, it disclosed what the policy never discloses")
            text = ""
        free[key] = text or defaults[key]
    carrier, _ = order_carrier(facts, policy)
    name = await _first_name(facts)
    fields = {
        "order_id": facts.order_id,
        "customer_name": name or "there",
        "promised_date": _day(facts.promised_delivery_date),
        "expected_date": _day(expected_delivery(facts, carrier, policy, now.date())),
        "new_mode": new_mode or "",
        "refund_amount": f"{refund_amount or 0:,.2f} USD",
        "credit_amount": f"{credit_amount or 0:,.2f} USD",
    }
    template = templates(policy)[TEMPLATE_SECTIONS[kind]]
    channel = "sms" if kind == "sms_update" else "email"
    subject = _fill(template.subject, fields) if template.subject else None
    body = _compose(template.body, {**fields, **free}, tone, name, add_apology, channel, policy)
    if not _fits(channel, subject, body, policy):
        warnings.append("the message was over the length limits with the given wording: used the template defaults")
        body = _compose(template.body, {**fields, **defaults}, "neutral", name, False, channel, policy)
        if not _fits(channel, subject, body, policy):
            raise ValueError(f"order_id: {order_id!r} makes the {kind} message longer than the policy allows")
    leaks = disclosure_problems(f"{subject or ''}\n{body}", policy)
    if leaks:  # pragma: no cover - the templates and the defaults disclose nothing
        raise RuntimeError("; ".join(leaks))
    return Draft(
        order_id=facts.order_id,
        kind=kind,
        channel=channel,
        subject=subject,
        body=body,
        template=template.section_id,
        citations=(template.citation_id, *RULE_CITATIONS),
        channels_allowed=policy.communication.channels_for(severity),
        send_after=quiet_hours_end(now, policy) if channel == "sms" else None,
        warnings=tuple(warnings),
    )


def _compose(
    template: str, fields: dict[str, str], tone: str, name: str | None, apologise: bool, channel: str, policy: Policy
) -> str:
    """The filled template in its tone, with the apology sentence when one is due and it fits."""
    body = _toned(_fill(template, fields), tone, name)
    if apologise:
        sorry = f"{body} {APOLOGY_SENTENCE}"
        body = sorry if _fits(channel, None, sorry, policy) else body
    return body


# --------------------------------------------------------------------------- writes (through the executor)


async def send_notification(
    facts: OrderFacts,
    *,
    channel: str,
    kind: str,
    subject: str | None,
    body: str,
    attribution: Attribution,
    now: datetime,
    send_after: datetime | None = None,
    refund_amount: float | None = None,
) -> LedgerWrite:
    """Queue a message in the outbox (``send_after``: quiet hours); an apology re-checks the customer's window.
    A refund confirmation over ``large_refund_copies.over_usd`` records its blind-copy recipients."""
    policy = current().policy
    copies = policy.large_refund_copies
    details: dict[str, Any] = {}
    if kind == "refund_confirmation" and refund_amount is not None and refund_amount > copies.over_usd:
        details = {"bcc": list(copies.copy_to), "refund_amount": refund_amount}
    apology = is_apology(kind, subject or "", body)
    stored_kind = "apology" if apology else kind
    values: dict[str, Any] = {
        "customer_id": facts.customer_id,
        "customer_ref": facts.customer_ref,
        "order_id": facts.order_id,
        "channel": channel,
        "template": TEMPLATE_SECTIONS.get(kind, kind),
        "kind": stored_kind,
        "subject": subject,
        "body": body,
        "status": "queued",
        "send_after": send_after or now,
        "details": details,
    }
    guard = None
    if apology:
        rule = policy.communication.apology

        async def one_apology(conn: Any) -> str | None:
            sent = await count(
                conn,
                "SELECT count(*) FROM notifications WHERE customer_ref = %(c)s AND kind = 'apology'"
                " AND status <> 'cancelled' AND coalesce(send_after, created_at) > %(since)s",
                {"c": facts.customer_ref, "since": now - timedelta(hours=rule.window_hours)},
            )
            if sent <= rule.max_per_customer:
                return None
            return f"communication.apology: {rule.max_per_customer} per customer in {rule.window_hours} hours"

        guard = Guard(lock=f"apology:{facts.customer_ref}", check=one_apology)
    return await insert_once("notifications", values, attribution, guard=guard)


async def log_interaction(
    facts: OrderFacts, *, summary: str, channel: str, direction: str, attribution: Attribution
) -> LedgerWrite:
    """Record an interaction with (or a note about) the customer of the order."""
    values: dict[str, Any] = {
        "order_id": facts.order_id,
        "customer_ref": facts.customer_ref,
        "channel": channel,
        "direction": direction,
        "summary": summary,
        "details": {},
    }
    return await insert_once("interactions", values, attribution)
