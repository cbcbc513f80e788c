"""The executor: runs an allowed action through its tool, writing exactly one ledger row, idempotently.

:func:`execute` refuses an action its verdict does not allow (:class:`ActionRefused`), and refuses an agent
(``actor="agent:<specialist>"``) an action outside the automation limits: only a person's approval executes those.
The row's idempotency key is ``f"{thread_id}:{action.action_id}"``, so a re-executed run (a worker died, a node
replayed) finds the row instead of writing a second one and reports ``created=False``. The row records the actor,
the specialist, the verdict's rule and the action's citations.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

from tools import escalation, messaging, payment, shipment
from tools.actions import LEDGERS, ExecutedAction, ProposedAction, Verdict, ledger_key
from tools.guardrails import DEFAULT_TEAM, credit_kind, message_kind, number, text_arg, upgrade_kind
from tools.ledger import Attribution, LedgerWrite
from tools.orders import OrderFacts, require_order, utc_now

log = logging.getLogger(__name__)

AGENT_ACTOR_PREFIX: Final = "agent:"


class ActionRefused(RuntimeError):
    """The action may not be executed (not allowed, or an agent acting beyond the automation limits)."""


Runner = Callable[[ProposedAction, Verdict, OrderFacts, Attribution, datetime], Awaitable[LedgerWrite]]


def _amount(action: ProposedAction, verdict: Verdict) -> float:
    value = verdict.amount if verdict.amount is not None else action.amount
    if value is None:
        value = number(action.args.get("amount"))
    if value is None:
        raise ActionRefused(f"{action.action_id}: {action.name} needs an amount")
    return value


def _reason(action: ProposedAction) -> str:
    return action.reason or action.name.replace("_", " ")


async def _reschedule(a: ProposedAction, v: Verdict, f: OrderFacts, at: Attribution, now: datetime) -> LedgerWrite:
    return await shipment.reschedule_shipment(
        f,
        reason=_reason(a),
        attribution=at,
        new_date=text_arg(a.args, "new_date") or None,
        carrier_id=text_arg(a.args, "carrier_id").lower() or None,
    )


async def _upgrade(a: ProposedAction, v: Verdict, f: OrderFacts, at: Attribution, now: datetime) -> LedgerWrite:
    kind, to_mode = upgrade_kind(a.args, f)
    return await shipment.upgrade_shipping_mode(
        f, to_mode=to_mode, kind=kind, fee=_amount(a, v), reason=_reason(a), attribution=at
    )


async def _transfer(a: ProposedAction, v: Verdict, f: OrderFacts, at: Attribution, now: datetime) -> LedgerWrite:
    to_block = text_arg(a.args, "to_block").upper()
    return await shipment.transfer_warehouse(f, to_block=to_block, reason=_reason(a), attribution=at)


async def _notify(a: ProposedAction, v: Verdict, f: OrderFacts, at: Attribution, now: datetime) -> LedgerWrite:
    return await messaging.send_notification(
        f,
        channel=text_arg(a.args, "channel").lower(),
        kind=message_kind(a.args),
        subject=text_arg(a.args, "subject") or None,
        body=text_arg(a.args, "body"),
        attribution=at,
        now=now,
        send_after=datetime.fromisoformat(v.send_after) if v.send_after else None,
        refund_amount=number(a.args.get("refund_amount")),
    )


async def _interaction(a: ProposedAction, v: Verdict, f: OrderFacts, at: Attribution, now: datetime) -> LedgerWrite:
    return await messaging.log_interaction(
        f,
        summary=text_arg(a.args, "summary"),
        channel=text_arg(a.args, "channel").lower() or "note",
        direction=text_arg(a.args, "direction").lower() or "internal",
        attribution=at,
    )


async def _refund(a: ProposedAction, v: Verdict, f: OrderFacts, at: Attribution, now: datetime) -> LedgerWrite:
    return await payment.issue_refund(f, amount=_amount(a, v), reason=_reason(a), attribution=at)


async def _credit(a: ProposedAction, v: Verdict, f: OrderFacts, at: Attribution, now: datetime) -> LedgerWrite:
    kind = credit_kind(a.args, f)
    return await payment.apply_store_credit(
        f, amount=_amount(a, v), kind=kind, reason=_reason(a), attribution=at, now=now
    )


async def _ticket(a: ProposedAction, v: Verdict, f: OrderFacts, at: Attribution, now: datetime) -> LedgerWrite:
    return await escalation.create_ticket(
        f,
        team=text_arg(a.args, "team") or DEFAULT_TEAM,
        priority=text_arg(a.args, "priority").upper(),
        summary=text_arg(a.args, "summary"),
        attribution=at,
    )


async def _owner(a: ProposedAction, v: Verdict, f: OrderFacts, at: Attribution, now: datetime) -> LedgerWrite:
    return await escalation.assign_owner(f, owner=text_arg(a.args, "owner"), note=_reason(a), attribution=at)


async def _priority(a: ProposedAction, v: Verdict, f: OrderFacts, at: Attribution, now: datetime) -> LedgerWrite:
    priority = text_arg(a.args, "priority").upper()
    return await escalation.flag_priority(f, priority=priority, note=_reason(a), attribution=at)


RUNNERS: Final[dict[str, Runner]] = {
    "reschedule_shipment": _reschedule,
    "upgrade_shipping_mode": _upgrade,
    "transfer_warehouse": _transfer,
    "send_notification": _notify,
    "issue_refund": _refund,
    "apply_store_credit": _credit,
    "create_ticket": _ticket,
    "assign_owner": _owner,
    "flag_priority": _priority,
    "log_interaction": _interaction,
}
if set(RUNNERS) != set(LEDGERS):
    raise RuntimeError("tools.executor: every action needs a runner")


def _summary(action: ProposedAction, write: LedgerWrite, amount: float | None) -> str:
    money = f" {amount:,.2f} USD" if amount is not None else ""
    state = "recorded" if write.created else "already recorded"
    return f"{action.name}{money} on order {action.args.get('order_id')}: {state} ({write.ledger} #{write.ledger_id})"


def _check_executable(action: ProposedAction, verdict: Verdict, thread_id: str, actor: str) -> None:
    if verdict.action_id != action.action_id:
        raise ValueError(f"verdict: it judges {verdict.action_id!r}, not {action.action_id!r}")
    if not thread_id or not actor or not action.action_id:
        raise ValueError("thread_id, actor and action.action_id are required")
    if action.name not in RUNNERS:
        raise ActionRefused(f"{action.action_id}: unknown action {action.name!r}")
    if not verdict.allowed:
        raise ActionRefused(f"{action.action_id}: {action.name} is not allowed: {verdict.reason}")
    if actor.startswith(AGENT_ACTOR_PREFIX) and not verdict.automatic:
        raise ActionRefused(
            f"{action.action_id}: {action.name} is over the automation limits and needs "
            f"{verdict.required_role} approval; an agent may not execute it"
        )


async def execute(
    action: ProposedAction, verdict: Verdict, *, thread_id: str, actor: str, now: datetime | None = None
) -> ExecutedAction:
    """Write the action's one ledger row (or find it, on a replay); raises :class:`ActionRefused` when refused."""
    _check_executable(action, verdict, thread_id, actor)
    now = now or utc_now()
    order_id = str(action.args.get("order_id", ""))
    facts = await require_order(order_id, now=now)
    attribution = Attribution(
        idempotency_key=ledger_key(thread_id, action.action_id),
        actor=actor,
        agent=action.agent,
        policy_rule=verdict.rule,
        thread_id=thread_id,
        citations=tuple(action.citations),
    )
    write = await RUNNERS[action.name](action, verdict, facts, attribution, now)
    amount = verdict.amount if verdict.amount is not None else action.amount
    stored: Any = write.row.get("amount", write.row.get("cost"))
    if not write.created and stored is not None and amount is not None and abs(float(stored) - amount) > 0.005:
        log.warning("replayed action differs from its ledger row", extra={"key": attribution.idempotency_key})
    return ExecutedAction(
        action_id=action.action_id,
        name=action.name,
        agent=action.agent,
        ledger=write.ledger,
        ledger_id=write.ledger_id,
        created=write.created,
        actor=write.row.get("actor", actor),
        rule=write.row.get("policy_rule", verdict.rule),
        amount=float(stored) if stored is not None and amount is not None else amount,
        summary=_summary(action, write, amount),
    )
