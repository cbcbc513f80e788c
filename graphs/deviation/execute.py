"""``execute`` and ``record``: carry out what was allowed or approved, then write down how the deviation ended.

``execute`` writes each action through the executor (one ledger row keyed on thread + action id: a re-executed
run writes nothing twice), attributed to the agent when the automation role allowed it, to the approver when a
person did. An action the policy refuses is never executed; a rejected one is not either, and the resolution
says so with the approver's message. An edit may change only the fields a person may set (amount, message
text); the edited action is checked again against the policy at the decider's role before it runs.
``record`` sets the deviation's final status, stores the resolution and remembers it as a case.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, replace
from typing import Any

from langgraph.config import get_config

from graphs.deviation.review import order_context, to_action
from graphs.deviation.state import DeviationState
from tools.actions import ProposedAction, Verdict
from tools.deps import current
from tools.executor import ActionRefused
from tools.executor import execute as run_action
from tools.guardrails import check_action
from tools.ledger import LedgerLimitError
from tools.resolutions import Status, record_resolution

EDITABLE = frozenset({"amount", "body", "subject", "message"})
"""Arguments an approver may change in an edit; any other difference refuses the edit."""


def _outcome(action: ProposedAction, outcome: str, why: str, **extra: Any) -> dict[str, Any]:
    return {"action_id": action.action_id, "agent": action.agent, "name": action.name, "amount": action.amount,
            "outcome": outcome, "why": why, **extra}  # fmt: skip


def _edited(action: ProposedAction, decision: dict[str, Any]) -> ProposedAction | str:
    """The action as edited, or why the edit is refused."""
    edited = decision.get("edited_action") or {}
    if edited.get("name") != action.name:
        return f"an edit may not turn {action.name} into {edited.get('name')!r}"
    args = dict(edited.get("args") or {})
    changed = sorted(k for k in set(args) | set(action.args) if args.get(k) != action.args.get(k))
    forbidden = [k for k in changed if k not in EDITABLE]
    if forbidden:
        return f"an edit may change only {', '.join(sorted(EDITABLE))}; it changed {', '.join(forbidden)}"
    amount = action.amount
    if "amount" in args:
        value = args["amount"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < float(value) < 1e9:
            return f"the edited amount must be a positive number, got {value!r}"
        amount = round(float(value), 2)
        args["amount"] = amount
    return replace(action, args=args, amount=amount)


async def execute(state: DeviationState) -> dict[str, Any]:
    """Node: execute the automatic and the approved actions; account for every proposal."""
    thread_id = str(get_config()["configurable"]["thread_id"])
    decisions = {d["action_id"]: d for d in state.get("decisions") or []}
    now = dt.datetime.now(dt.UTC)
    policy = current().policy
    executed: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    context = None
    ran: set[str] = set()
    for proposal, verdict_data in zip(state.get("proposals") or [], state.get("verdicts") or [], strict=True):
        action, verdict = to_action(proposal), Verdict(**{**verdict_data, "violations": tuple(verdict_data.get(
            "violations") or ())})  # fmt: skip
        if not verdict.allowed:
            outcomes.append(_outcome(action, "refused", "; ".join(verdict.violations) or verdict.reason))
            continue
        missing = [d for d in action.depends_on if d not in ran]
        if missing:
            outcomes.append(_outcome(action, "skipped", f"it describes {', '.join(missing)}, which did not run"))
            continue
        actor = f"agent:{action.agent}"
        if not verdict.automatic:
            decision = decisions.get(action.action_id)
            if decision is None:
                outcomes.append(_outcome(action, "skipped", "no decision was given"))
                continue
            decider = decision.get("actor") or {}
            actor = str(decider.get("id") or "unknown approver")
            if decision["type"] != "approve" and decision["type"] != "edit":
                outcomes.append(_outcome(action, "rejected", decision.get("message") or "rejected", decided_by=actor))
                continue
            if decision["type"] == "edit":
                edited = _edited(action, decision)
                if isinstance(edited, str):
                    outcomes.append(_outcome(action, "refused", edited, decided_by=actor))
                    continue
                context = context or await order_context(state, now)
                verdict = check_action(edited, *context, policy, now=now, decider_role=str(decider.get("role")))
                if not verdict.allowed:
                    why = "; ".join(verdict.violations) or verdict.reason
                    outcomes.append(_outcome(edited, "refused", f"as edited: {why}", decided_by=actor))
                    continue
                action = edited
        try:
            done = await run_action(action, verdict, thread_id=thread_id, actor=actor)
        except (LedgerLimitError, ActionRefused) as exc:  # e.g. another run used the customer's one apology first
            outcomes.append(_outcome(action, "refused", f"at execution: {exc}", actor=actor))
            continue
        executed.append(asdict(done))
        ran.add(action.action_id)
        person = None if verdict.automatic else actor
        outcomes.append(_outcome(action, "executed", verdict.rule, actor=actor, decided_by=person, ledger=done.ledger,
                                 ledger_id=done.ledger_id, summary=done.summary))  # fmt: skip
    return {"executed": executed, "outcomes": outcomes}


def final_status(outcomes: list[dict[str, Any]]) -> Status:
    """escalated when an escalation action ran; dismissed when nothing ran because a person rejected it; resolved
    otherwise."""
    ran = [o for o in outcomes if o["outcome"] == "executed"]
    if any(o["agent"] == "escalation" for o in ran):
        return "escalated"
    if not ran and any(o["outcome"] == "rejected" for o in outcomes):
        return "dismissed"
    return "resolved"


def _summary(status: str, outcomes: list[dict[str, Any]]) -> str:
    parts = []
    for o in outcomes:
        amount = f" {o['amount']:.2f} USD" if o.get("amount") else ""
        who = f" by {o['decided_by']}" if o.get("decided_by") else ""
        parts.append(f"{o['name'].replace('_', ' ')}{amount}: {o['outcome']}{who}")
    return f"Deviation {status}. " + ("; ".join(parts) + "." if parts else "No action was needed.")


async def record(state: DeviationState) -> dict[str, Any]:
    """Node: final status, resolution on the deviation row, and the case for future searches."""
    outcomes = state.get("outcomes") or []
    status = final_status(outcomes)
    thread_id = str(get_config()["configurable"]["thread_id"])
    order = state.get("order") or {}
    deciders = sorted({o["decided_by"] for o in outcomes if o.get("decided_by")})
    summary = _summary(status, outcomes)
    resolution = {
        "deviation_id": state.get("deviation_id"), "thread_id": thread_id, "status": status, "summary": summary,
        "severity": state.get("severity"), "specialists": (state.get("plan") or {}).get("specialists", []),
        "actions": outcomes, "decided_by": deciders, "resolved_at": dt.datetime.now(dt.UTC).isoformat(),
    }  # fmt: skip
    case = {
        "deviation_id": state.get("deviation_id"), "thread_id": thread_id, "order_id": order.get("order_id"),
        "warehouse_block": order.get("warehouse_block"), "mode_of_shipment": order.get("mode_of_shipment"),
        "weight_in_gms": order.get("weight_in_gms"), "product_importance": order.get("product_importance"),
        "delay_probability": (state.get("score") or {}).get("delay_probability"),
        "severity": state.get("severity") or "info", "summary": summary, "outcome": status,
        "approved_by": ", ".join(deciders) or None,
        "actions": [{"agent_type": o["agent"], "action": o["name"], "amount": o.get("amount"),
                     "status": o["outcome"], "detail": o.get("why")} for o in outcomes],
    }  # fmt: skip
    resolved_by = deciders[0] if deciders else "agent:deviation"
    case_id = await record_resolution(str(state.get("deviation_id")), status, resolution, resolved_by=resolved_by,
                                      case=case)  # fmt: skip
    notes = [] if case_id else ["the knowledge base is not available: the case was not stored for later searches"]
    return {"resolution": {**resolution, "case_id": case_id}, "notes": notes}
