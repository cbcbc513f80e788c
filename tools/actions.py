"""The typed vocabulary of the deviation workflow's side effects: proposed actions, verdicts, executed actions.

A specialist proposes :class:`ProposedAction` values; :func:`tools.guardrails.check_action` turns each into a
:class:`Verdict` (allowed? automatic? least role? which policy rule?); :func:`tools.executor.execute` writes the
allowed ones to their ledger and returns an :class:`ExecutedAction`. The graph, the evaluation and the REST routes
all speak these three types.

``ACTION_SCOPES`` says which specialist may propose which action; ``POLICY_ACTIONS`` names the approval-table key
(``approval.amount_limits`` or ``approval.action_min_role`` in the policy file) each action is judged under, and
``LEDGERS`` the table it is recorded in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

ActionName = Literal[
    "reschedule_shipment",
    "upgrade_shipping_mode",
    "transfer_warehouse",
    "send_notification",
    "issue_refund",
    "apply_store_credit",
    "create_ticket",
    "assign_owner",
    "flag_priority",
    "log_interaction",
]
ACTION_NAMES: Final[tuple[str, ...]] = get_args(ActionName)

Specialist = Literal["shipment", "customer", "payment", "escalation"]
SPECIALISTS: Final[tuple[str, ...]] = get_args(Specialist)

ACTION_SCOPES: Final[dict[str, frozenset[str]]] = {
    "shipment": frozenset({"reschedule_shipment", "upgrade_shipping_mode", "transfer_warehouse"}),
    "customer": frozenset({"send_notification", "log_interaction"}),
    "payment": frozenset({"issue_refund", "apply_store_credit"}),
    "escalation": frozenset({"create_ticket", "assign_owner", "flag_priority", "log_interaction"}),
}
"""Which specialist may propose which action (the write half of :data:`tools.scopes.TOOL_SCOPES`)."""

POLICY_ACTIONS: Final[dict[str, str]] = {
    "reschedule_shipment": "reschedule_shipment",  # carrier_reassignment when args carry carrier_id
    "upgrade_shipping_mode": "shipping_upgrade",
    "transfer_warehouse": "warehouse_transfer",
    "send_notification": "customer_notification",
    "issue_refund": "refund",
    "apply_store_credit": "store_credit",
    "create_ticket": "escalation_ticket",
    "assign_owner": "escalation_ticket",
    "flag_priority": "escalation_ticket",
    "log_interaction": "log_interaction",  # an internal record: not in the approval table (automation role)
}
"""Default approval-table key per action (the guardrail may pick a more specific one, see above)."""

LEDGERS: Final[dict[str, str]] = {
    "reschedule_shipment": "shipment_changes",
    "upgrade_shipping_mode": "shipment_changes",
    "transfer_warehouse": "shipment_changes",
    "send_notification": "notifications",
    "issue_refund": "refunds",
    "apply_store_credit": "store_credits",
    "create_ticket": "tickets",
    "assign_owner": "ticket_updates",
    "flag_priority": "ticket_updates",
    "log_interaction": "interactions",
}
"""The ledger table each action writes its one row to."""

if set(POLICY_ACTIONS) != set(ACTION_NAMES) or set(LEDGERS) != set(ACTION_NAMES):
    raise RuntimeError("tools.actions: POLICY_ACTIONS and LEDGERS must name every action exactly once")
if set(ACTION_SCOPES) != set(SPECIALISTS) or not set().union(*ACTION_SCOPES.values()) <= set(ACTION_NAMES):
    raise RuntimeError("tools.actions: ACTION_SCOPES must name every specialist and only known actions")


@dataclass(frozen=True)
class ProposedAction:
    """An action a specialist proposes; nothing happens until a verdict allows it and the executor runs it."""

    action_id: str  # stable within a thread, e.g. "payment:issue_refund:1"; ledger key = f"{thread_id}:{action_id}"
    agent: str  # specialist name: shipment | customer | payment | escalation
    name: ActionName
    args: dict[str, Any]  # the tool's arguments (order_id always; amount, to_mode, channel, body, team, priority ...)
    reason: str  # why, in words
    amount: float | None = None  # money moved in USD (refund, store credit, upgrade fee), else None
    citations: tuple[str, ...] = ()  # citation ids of the policy passages relied on
    depends_on: tuple[str, ...] = ()  # action ids that must have run for this one to make sense (a message about them)


@dataclass(frozen=True)
class Verdict:
    """What the policy says about one proposed action (see :func:`tools.guardrails.check_action`)."""

    action_id: str
    allowed: bool  # False: the policy forbids it for every role (a violation); never executed
    automatic: bool  # within the automation role's limits: executes without a person
    required_role: str | None  # least role that may execute/approve it (None when not allowed)
    policy_action: str  # the approval-table key used: refund, store_credit, shipping_upgrade, ...
    rule: str  # the policy rules, in words with their paths and numbers
    reason: str
    violations: tuple[str, ...] = ()
    amount: float | None = None  # the amount judged (an upgrade's fee comes from its path), else None
    send_after: str | None = None  # ISO 8601: a message due in quiet hours is queued until then
    decider_role: str | None = None  # the role the verdict was asked for (None: automation and the least role)


@dataclass(frozen=True)
class ExecutedAction:
    """One executed action: its ledger row, who did it and under which rule."""

    action_id: str
    name: str
    agent: str
    ledger: str
    ledger_id: int | None
    created: bool  # False = it already existed (idempotent replay)
    actor: str
    rule: str
    amount: float | None
    summary: str


def ledger_key(thread_id: str, action_id: str) -> str:
    """The idempotency key of an action's ledger row."""
    return f"{thread_id}:{action_id}"
