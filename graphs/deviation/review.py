"""``guardrails`` and ``approval``: every proposed action is checked against the policy; a person decides the ones
beyond the automation role's limits.

The guardrails call the one policy check (:func:`tools.guardrails.check_action`) that the evaluation also uses, so
"0 policy violations" is measured by the rules that enforce it. ``approval`` interrupts only when some allowed
action is not automatic: one action request per such action, with its amount, the role required, the rule and
the policy passages it relies on, in the approval schema every client of the server renders. The server
validates the answer and stamps each decision with who decided and when; this node only files them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from langgraph.types import interrupt

from graphs.common.approval import ApprovalAction, approval_request
from graphs.deviation.state import DeviationState
from tools.actions import ProposedAction
from tools.deps import current
from tools.guardrails import check_action
from tools.orders import CustomerHistory, OrderFacts, customer_history, get_order
from tools.resolutions import set_status


def to_action(proposal: dict[str, Any]) -> ProposedAction:
    """A proposal from the state back into the tools' type."""
    return ProposedAction(**{**proposal, "citations": tuple(proposal.get("citations") or ()),
                             "depends_on": tuple(proposal.get("depends_on") or ())})  # fmt: skip


async def order_context(state: DeviationState, now: dt.datetime) -> tuple[OrderFacts, CustomerHistory]:
    """The order's facts and the customer's history as the database has them now."""
    order_id = str((state.get("order") or {}).get("order_id") or state.get("order_id"))
    facts = await get_order(order_id)
    if facts is None:
        raise LookupError(f"order {order_id} is no longer recorded")
    return facts, await customer_history(facts.customer_ref or "", facts.order_id, now=now)


async def guardrails(state: DeviationState) -> dict[str, Any]:
    """Node: one verdict per proposal."""
    now = dt.datetime.now(dt.UTC)
    facts, history = await order_context(state, now)
    policy = current().policy
    verdicts = [check_action(to_action(p), facts, history, policy, now=now) for p in state.get("proposals") or []]
    return {"verdicts": [asdict(v) for v in verdicts]}


def needs_decision(state: DeviationState) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The (proposal, verdict) pairs a person must decide: allowed by the policy, beyond automation."""
    pairs = zip(state.get("proposals") or [], state.get("verdicts") or [], strict=True)
    return [(p, v) for p, v in pairs if v["allowed"] and not v["automatic"]]


def _request(pending: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    actions = [
        ApprovalAction(
            name=p["name"], args=dict(p["args"]), description=f"{p['agent']}: {p['reason']}", amount=p.get("amount"),
            required_role=v["required_role"], policy_action=v["policy_action"], policy_reason=v["rule"],
            citations=list(p.get("citations") or ()),
        )
        for p, v in pending
    ]
    return approval_request(actions)


async def approval(state: DeviationState) -> dict[str, Any]:
    """Node: interrupt for the actions that need a person; file the stamped decisions in action order."""
    pending = needs_decision(state)
    if not pending:
        return {"decisions": []}
    deviation_id = str(state.get("deviation_id"))
    await set_status(deviation_id, "awaiting_approval")  # re-run on resume: the same update, harmless
    answer = interrupt(_request(pending))
    decisions = answer.get("decisions") if isinstance(answer, dict) else None
    if not isinstance(decisions, list) or len(decisions) != len(pending):
        raise ValueError(f"expected {len(pending)} decision(s) from the approval, got {answer!r}")
    await set_status(deviation_id, "in_progress")
    return {"decisions": [{"action_id": p["action_id"], **d} for (p, _), d in zip(pending, decisions, strict=True)]}
