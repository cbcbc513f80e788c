"""Build the value of an approval interrupt: one schema every client of the server can render.

The value is LangChain v1's ``HumanInTheLoopMiddleware`` request (``action_requests`` + ``review_configs``),
which current Agent Chat UI renders as an approval card and the server validates decisions against. Each
action request carries the server's extras (``amount``, ``currency``, ``required_role``, ``policy_action``,
``policy_reason``, ``citations``) and, for Agent Inbox, which reads a v1 action's arguments as
``arguments``, that key too. The first action is also given in the older ``HumanInterrupt`` form
(``action_request``, ``config.allow_*``, ``description``) that Agent Inbox and the Agent Chat UI template
published on npm render. Every form resumes through the same server-side validation and authority check.

    decisions = interrupt(approval_request([ApprovalAction("issue_refund", {"order_id": "A-17", "amount": 120.0},
                                                           "Refund 120.00 on order A-17", amount=120.0, ...)]))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Decision = Literal["approve", "edit", "reject", "respond"]
ALL_DECISIONS: tuple[Decision, ...] = ("approve", "edit", "reject")


@dataclass(frozen=True)
class ApprovalAction:
    """One action a person must decide: what would run, why it needs a person, and who may decide."""

    name: str
    args: dict[str, Any]
    description: str
    amount: float | None = None
    currency: str = "USD"
    required_role: Literal["operator", "approver", "admin"] = "approver"
    policy_action: str | None = None
    policy_reason: str | None = None
    citations: Sequence[Any] = field(default_factory=tuple)
    allowed_decisions: Sequence[Decision] = ALL_DECISIONS


def approval_request(actions: Sequence[ApprovalAction]) -> dict[str, Any]:
    """The interrupt value asking for a decision on each of ``actions`` (in order)."""
    if not actions:
        raise ValueError("an approval request needs at least one action")
    requests = []
    for action in actions:
        request: dict[str, Any] = {
            "name": action.name, "args": dict(action.args), "arguments": dict(action.args),
            "description": action.description, "required_role": action.required_role, "currency": action.currency,
            "citations": list(action.citations),
        }  # fmt: skip
        for key in ("amount", "policy_action", "policy_reason"):
            if getattr(action, key) is not None:
                request[key] = getattr(action, key)
        requests.append(request)
    first = actions[0]
    allowed = set(first.allowed_decisions)
    return {
        "action_requests": requests,
        "review_configs": [
            {"action_name": name, "allowed_decisions": list(a.allowed_decisions)}
            for name, a in {a.name: a for a in actions}.items()
        ],
        "action_request": {"action": first.name, "args": dict(first.args)},
        "config": {
            "allow_accept": "approve" in allowed,
            "allow_edit": "edit" in allowed,
            "allow_respond": "reject" in allowed,
            "allow_ignore": "reject" in allowed,
        },
        "description": first.description,
    }
