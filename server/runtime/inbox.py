"""The approvals inbox: every pending interrupt across threads, from the threads index.

An item says which assistant and thread wait, what is asked (each action with its arguments, amount, policy
reason and required role), since when, and whether the caller could decide it. Interrupts that are not
approvals (a clarifying question) are listed too, as ``kind: "question"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.auth import ROLE_RANK, Principal
from server.runtime import store
from server.runtime.authority import Authority, can_decide
from server.runtime.interrupts import approval_or_none, looks_like_approval
from server.settings import Role


@dataclass(frozen=True)
class InboxFilter:
    """What to list: by assistant, thread, kind, required role, amount, and what the caller can decide."""

    assistant_id: str | None = None
    thread_id: str | None = None
    kind: str | None = None
    required_role: Role | None = None
    min_amount: float | None = None
    decidable: bool = False


def _item(row: store.Row, pending: dict[str, Any], principal: Principal, authority: Authority | None) -> dict[str, Any]:
    request = approval_or_none(pending.get("value"))
    item: dict[str, Any] = {
        "thread_id": row["thread_id"],
        "assistant_id": row.get("assistant_id"),
        "interrupt_id": pending.get("id"),
        "node": pending.get("node"),
        "waiting_since": pending.get("since"),
        "thread_metadata": row.get("metadata") or {},
        "decision_url": f"/approvals/{row['thread_id']}/decision",
    }
    if request is None and looks_like_approval(pending.get("value")):
        return item | {
            "kind": "approval",
            "description": "malformed approval request: nobody may decide it until the graph is fixed",
            "value": pending.get("value"),
            "action_requests": [],
            "required_role": "admin",
            "total_amount": None,
            "can_decide": False,
        }
    if request is None:
        value = pending.get("value")
        question = value.get("question") if isinstance(value, dict) else value
        return item | {
            "kind": "question",
            "description": str(question),
            "value": value,
            "action_requests": [],
            "required_role": "operator",
            "total_amount": None,
            "can_decide": principal.has("operator"),
        }
    roles: list[Role] = [a.required_role for a in request.action_requests]
    amounts = [a.amount for a in request.action_requests if a.amount is not None]
    required: Role = max(roles, key=ROLE_RANK.__getitem__)
    return item | {
        "kind": "approval",
        "description": "; ".join(a.description for a in request.action_requests),
        "action_requests": [
            a.model_dump() | {"allowed_decisions": request.allowed(i)} for i, a in enumerate(request.action_requests)
        ],
        "required_role": required,
        "total_amount": sum(amounts) if amounts else None,
        "can_decide": principal.has("approver") and can_decide(principal, request, authority),
    }


async def list_pending(
    pool: store.Pool, principal: Principal, authority: Authority | None, where: InboxFilter
) -> list[dict[str, Any]]:
    """Every pending interrupt matching ``where``, the longest-waiting first."""
    items = []
    for row in await store.interrupted_threads(pool, where.assistant_id):
        if where.thread_id and row["thread_id"] != where.thread_id:
            continue
        for pending in row.get("interrupts") or []:
            item = _item(row, pending, principal, authority)
            if where.kind and item["kind"] != where.kind:
                continue
            if where.required_role and item["required_role"] != where.required_role:
                continue
            if where.min_amount is not None and (item["total_amount"] or 0) < where.min_amount:
                continue
            if where.decidable and not item["can_decide"]:
                continue
            items.append(item)
    items.sort(key=lambda i: (i["waiting_since"] or "", i["thread_id"]))
    return items
