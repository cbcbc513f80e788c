"""A thread's audit trail, rendered from its checkpoint history (no separate events table).

Each event says when, who (the principal who started a run or decided an approval, or ``agent:<node>``)
and what: runs started with their input, the keys each node wrote, errors, what an interrupt asked (actions,
amounts, policy reasons, required roles), and each decision with the approver and their comment.
"""

from __future__ import annotations

from typing import Any

from langgraph.types import StateSnapshot

from server.runtime import store
from server.runtime.core import Runtime
from server.runtime.decisions import resume_values
from server.runtime.interrupts import ApprovalRequest, approval_or_none
from server.runtime.serde import to_jsonable


def _keys(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(sorted(str(k) for k in value)) or "nothing"
    return type(value).__name__


def _actor(metadata: dict[str, Any]) -> str:
    if "actor_id" in metadata:
        return f"{metadata['actor_id']} ({metadata.get('actor_role', '?')})"
    return "unknown"


def _asked(request: ApprovalRequest) -> str:
    parts = []
    for action in request.action_requests:
        detail = [f"{action.name}"]
        if action.amount is not None:
            detail.append(f"amount {action.amount:,.2f}")
        detail.append(f"needs {action.required_role}")
        if action.policy_reason:
            detail.append(f"policy: {action.policy_reason}")
        parts.append(f"{action.description} ({'; '.join(detail)})")
    return "asked for approval: " + " | ".join(parts)


def _decision_events(value: Any, asked: dict[str, ApprovalRequest], fallback_when: str | None) -> list[dict[str, Any]]:
    """Events for one resume value (plain, or keyed by interrupt id)."""
    if isinstance(value, dict) and value and set(value) <= set(asked) and "decisions" not in value:
        items = list(value.items())
    else:
        items = [(next(iter(asked), ""), value)]
    events = []
    for interrupt_id, answer in items:
        request = asked.get(interrupt_id)
        if isinstance(answer, dict) and "decided_at" in answer:  # the per-call form: one decision
            answer = {"decisions": [answer]}
        decisions = answer.get("decisions") if isinstance(answer, dict) else None
        if not isinstance(decisions, list):
            events.append(
                {
                    "when": fallback_when,
                    "who": "unknown",
                    "kind": "answer",
                    "what": f"answered: {to_jsonable(answer)}",
                    "details": {"interrupt_id": interrupt_id},
                }
            )
            continue
        for index, decision in enumerate(decisions):
            if not isinstance(decision, dict):
                continue
            actor = decision.get("actor") or {}
            who = f"{actor.get('id', 'unknown')} ({actor.get('role', '?')})"
            action = (
                request.action_requests[index].name
                if request is not None and index < len(request.action_requests) else f"action {index + 1}"
            )  # fmt: skip
            kind = "ignored" if decision.get("ignored") else decision.get("type")
            what = f"{kind} {action}"
            edited = decision.get("edited_action")
            if isinstance(edited, dict) and edited.get("args"):
                what += f" with {to_jsonable(edited['args'])}"
            if decision.get("message") and not decision.get("ignored"):
                what += f": {decision['message']!r}"
            events.append(
                {
                    "when": decision.get("decided_at") or fallback_when,
                    "who": who,
                    "kind": "decision",
                    "what": what,
                    "details": to_jsonable(decision) | {"interrupt_id": interrupt_id},
                }
            )
    return events


def _snapshot_events(snapshot: StateSnapshot, finished_at: str | None, resumes: list[Any]) -> list[dict[str, Any]]:
    metadata = dict(snapshot.metadata or {})
    step, run_id, when = metadata.get("step"), metadata.get("run_id"), snapshot.created_at
    events: list[dict[str, Any]] = []
    source = metadata.get("source")
    if source == "input":
        start = next((t for t in snapshot.tasks if t.name == "__start__"), None)
        keys = _keys(start.result) if start is not None and start.result is not None else "no input"
        events.append({"when": when, "who": _actor(metadata), "kind": "run_started",
                       "what": f"started run {run_id} of {metadata.get('assistant_id', '?')} with {keys}"})  # fmt: skip
    elif source in ("update", "fork") and metadata.get("resolution"):
        events.append({"when": when, "who": _actor(metadata), "kind": "resolved",
                       "what": f"marked the pending interrupt(s) as resolved ({metadata['resolution']}) without a "
                               "decision; nothing was executed",
                       "details": {"interrupt_ids": metadata.get("resolved_interrupts", [])}})  # fmt: skip
    elif source in ("update", "fork"):
        events.append({"when": when, "who": _actor(metadata), "kind": "state_edited",
                       "what": f"edited the state ({source})"})  # fmt: skip
    asked: dict[str, ApprovalRequest] = {}
    for task in snapshot.tasks:
        for item in task.interrupts:
            request = approval_or_none(item.value)
            if request is not None:
                asked[item.id] = request
                what, kind = _asked(request), "approval_requested"
            else:
                what, kind = f"asked: {to_jsonable(item.value)}", "question"
            events.append({"when": when, "who": f"agent:{task.name}", "kind": kind, "what": what,
                           "details": {"interrupt_id": item.id, "value": to_jsonable(item.value)}})  # fmt: skip
    for value in resumes:
        events.extend(_decision_events(value, asked, finished_at))
    for task in snapshot.tasks:
        if task.name == "__start__":
            continue
        if task.error is not None:
            events.append({"when": finished_at or when, "who": f"agent:{task.name}", "kind": "error",
                           "what": f"{task.name} failed: {type(task.error).__name__}: {task.error}"})  # fmt: skip
        elif task.result is not None:
            events.append({"when": finished_at or when, "who": f"agent:{task.name}", "kind": "step",
                           "what": f"{task.name} wrote {_keys(task.result)}"})  # fmt: skip
    for event in events:
        event.update(step=step, run_id=run_id)
    return events


async def audit_events(runtime: Runtime, thread_id: str) -> list[dict[str, Any]]:
    """The thread's events in causal order: per checkpoint, oldest first, what was asked, then decided,
    then what the nodes wrote."""
    row = await store.fetch_thread(runtime.pool, thread_id)
    assistant = runtime.assistant_of(row)
    if assistant is None:
        return []
    config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    snapshots = [s async for s in assistant.graph.aget_state_history(config)]
    snapshots.reverse()
    resumes = {checkpoint_id: values for checkpoint_id, values in await resume_values(runtime.checkpointer, thread_id)}
    events: list[dict[str, Any]] = []
    for index, snapshot in enumerate(snapshots):
        finished_at = snapshots[index + 1].created_at if index + 1 < len(snapshots) else None
        checkpoint_id = snapshot.config["configurable"]["checkpoint_id"]
        events.extend(_snapshot_events(snapshot, finished_at, resumes.get(checkpoint_id, [])))
    return events


def render_text(thread_id: str, events: list[dict[str, Any]]) -> str:
    """The events as readable lines: when, who, what."""
    lines = [f"audit of thread {thread_id} ({len(events)} events)"]
    for event in events:
        lines.append(f"{event['when'] or '-':<32}  {event['who']:<30}  {event['what']}")
    return "\n".join(lines) + "\n"
