"""Who may decide an approval: the action's required role, and the role's authority from the policy.

:class:`Authority` is data: per policy action (``refund``, ``store_credit``...), the largest amount each role
may approve (``None`` = no limit; a role missing or at 0 has no authority), and for actions without an
amount, the least role allowed. It comes from the policy file (``rag.policy.get_policy().approval``) or from
a test. An action request names its policy action in ``policy_action`` (else its ``name`` is looked up);
an action the policy does not know is checked by its ``required_role`` only. Rejecting (or answering in the
tool's place) needs the role but no amount authority; an edit is checked at the amount it decides.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from server.auth import Principal
from server.runtime.interrupts import ActionRequest, ApprovalRequest, Decision, ResumeValue, decided_amount
from server.settings import Role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Authority:
    """Approval authority: amount limits per action and role, and the least role per amount-less action."""

    amount_limits: Mapping[str, Mapping[str, float | None]]
    min_roles: Mapping[str, Role] = field(default_factory=dict)


def authority_problem(
    principal: Principal, action: ActionRequest, decision: Decision, authority: Authority | None
) -> str | None:
    """Why ``principal`` may not make ``decision`` on ``action``, or None when it may."""
    if not principal.has(action.required_role):
        return f"{action.name} needs the {action.required_role} role to decide; your key has {principal.role}"
    if authority is None:
        return None
    key = action.policy_action or action.name
    least = authority.min_roles.get(key)
    if least is not None and not principal.has(least):
        return f"the policy lets only {least} or above decide {key}; your key has {principal.role}"
    amount = decided_amount(action, decision)
    if decision.type in ("reject", "respond") or amount is None or key not in authority.amount_limits:
        return None
    limits = authority.amount_limits[key]
    limit = limits.get(principal.role, 0.0)
    if limit is not None and (limit <= 0 or amount > limit):
        return (
            f"approving {key} for {amount:,.2f} exceeds the {principal.role} authority of {limit:,.2f}; "
            "someone with a higher limit must decide"
        )
    return None


def check_authority(
    principal: Principal, request: ApprovalRequest, value: ResumeValue, authority: Authority | None
) -> list[str]:
    """Every reason the principal may not make these decisions (empty = allowed)."""
    problems = []
    for index, (action, decision) in enumerate(zip(request.action_requests, value.decisions, strict=True)):
        problem = authority_problem(principal, action, decision, authority)
        if problem:
            problems.append(f"decisions.{index}: {problem}")
    return problems


def can_decide(principal: Principal, request: ApprovalRequest, authority: Authority | None) -> bool:
    """Whether the principal could approve every action of the request as asked."""
    approve = Decision(type="approve")
    return all(authority_problem(principal, a, approve, authority) is None for a in request.action_requests)


def authority_from_policy(policy: Any) -> Authority:
    """The approval authority of a ``rag.policy.Policy``."""
    approval = policy.approval
    return Authority(
        amount_limits={action: dict(rule.limits) for action, rule in approval.amount_limits.items()},
        min_roles=dict(approval.action_min_role),
    )


def load_policy_authority() -> Authority | None:
    """The policy file's approval authority, or None (role checks only) when no policy module exists.
    An invalid policy file raises, so the server does not start with unknown limits."""
    try:
        from rag.policy import get_policy
    except ImportError:
        log.warning("no policy module (rag.policy): approvals check roles but no amount authority")
        return None
    return authority_from_policy(get_policy())
