"""Escalation tools: who should handle a deviation and how urgently (read), and the ticket ledger writes.

:func:`recommend_escalation` applies the escalation policy to an order: the priority of its severity with the
response targets, and the route (customer care lead for a customer who called more than ``care_calls_over``
times, management for a cluster of critical deviations in one warehouse block, else the operations team).
:func:`create_ticket`, :func:`assign_owner` and :func:`flag_priority` are written only by
:func:`tools.executor.execute`; an owner or a priority is recorded in ``ticket_updates`` and applied to the
order's latest ticket when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tools.deps import current
from tools.guardrails import DEFAULT_TEAM, severity_of
from tools.ledger import Attribution, LedgerWrite, count, insert_once
from tools.orders import OrderFacts, require_order, utc_now


@dataclass(frozen=True)
class EscalationAdvice:
    """The escalation policy applied to one order."""

    order_id: str
    severity: str
    priority: str | None  # escalation.priorities of the severity (None: not a deviation)
    acknowledge_hours: int | None
    resolve_hours: int | None
    team: str
    reasons: tuple[str, ...]
    block_critical_count: int  # critical deviations of the order's block in the cluster window


_CLUSTER_SQL = """
SELECT count(*) FROM deviations d
LEFT JOIN orders o ON o.order_id = d.order_id
LEFT JOIN order_inputs i ON i.order_id = d.order_id
WHERE d.severity = 'critical' AND d.created_at > %(since)s
  AND coalesce(o.warehouse_block, upper(i.data->>'warehouse_block')) = %(block)s
"""


async def recommend_escalation(order_id: str, *, now: datetime | None = None) -> EscalationAdvice:
    """Priority, response targets and the team the escalation policy routes this order to."""
    now = now or utc_now()
    facts = await require_order(order_id, now=now)
    policy = current().policy
    escalation, escalators = policy.escalation, policy.severity.escalators
    severity = severity_of(facts, {})
    priority = escalation.priorities.get(severity)  # type: ignore[call-overload]
    target = escalation.response_targets.get(priority) if priority else None
    cluster = 0
    if facts.warehouse_block:
        since = now - timedelta(hours=escalators.warehouse_window_hours)
        async with current().pool.connection() as conn:
            cluster = await count(conn, _CLUSTER_SQL, {"since": since, "block": facts.warehouse_block})
    reasons = []
    team = DEFAULT_TEAM
    if (facts.customer_care_calls or 0) > escalation.care_calls_over:
        team = escalation.routes["care_calls"]
        reasons.append(
            f"escalation.care_calls_over: {escalation.care_calls_over}; the customer called "
            f"{facts.customer_care_calls} times about this order"
        )
    if cluster > escalators.warehouse_critical_count_over:
        reasons.append(
            f"severity.escalators.warehouse_critical_count_over: {escalators.warehouse_critical_count_over}"
            f"; block {facts.warehouse_block} has {cluster} critical deviations in "
            f"{escalators.warehouse_window_hours} hours: open one ticket to "
            f"{escalation.routes['warehouse_cluster']}"
        )
        if team == DEFAULT_TEAM:
            team = escalation.routes["warehouse_cluster"]
    if priority:
        reasons.append(f"escalation.priorities.{severity}: {priority}")
    return EscalationAdvice(
        order_id=order_id,
        severity=severity,
        priority=priority,
        acknowledge_hours=target.acknowledge_hours if target else None,
        resolve_hours=target.resolve_hours if target else None,
        team=team,
        reasons=tuple(reasons),
        block_critical_count=cluster,
    )


# --------------------------------------------------------------------------- writes (through the executor)


async def create_ticket(
    facts: OrderFacts, *, team: str, priority: str, summary: str, attribution: Attribution
) -> LedgerWrite:
    """Open an escalation ticket on the order for ``team`` at ``priority``."""
    values = {
        "order_id": facts.order_id,
        "customer_ref": facts.customer_ref,
        "team": team,
        "priority": priority,
        "summary": summary,
        "status": "open",
        "details": {"severity": facts.severity},
    }
    return await insert_once("tickets", values, attribution)


def _apply_to_latest_ticket(order_id: str, column: str, value: str) -> Any:
    if column not in ("owner", "priority"):
        raise ValueError(f"column: {column!r}; allowed: owner, priority")
    update = (
        "UPDATE tickets SET owner = %(v)s, updated_at = now() WHERE ticket_id = %(t)s"
        if column == "owner"
        else "UPDATE tickets SET priority = %(v)s, updated_at = now() WHERE ticket_id = %(t)s"
    )

    async def apply(conn: Any, row: dict[str, Any]) -> None:
        cur = await conn.execute(
            "SELECT ticket_id FROM tickets WHERE order_id = %s ORDER BY created_at DESC, ticket_id DESC LIMIT 1",
            (order_id,),
        )
        ticket = await cur.fetchone()
        if ticket is None:
            return
        await conn.execute(update, {"v": value, "t": ticket["ticket_id"]})
        await conn.execute(
            "UPDATE ticket_updates SET ticket_id = %s WHERE update_id = %s", (ticket["ticket_id"], row["update_id"])
        )
        row["ticket_id"] = ticket["ticket_id"]

    return apply


async def assign_owner(facts: OrderFacts, *, owner: str, note: str, attribution: Attribution) -> LedgerWrite:
    """Hand the order over to ``owner`` (a team or a person); its latest ticket takes the owner."""
    values = {"order_id": facts.order_id, "kind": "assign_owner", "owner": owner, "note": note}
    return await insert_once(
        "ticket_updates", values, attribution, after_insert=_apply_to_latest_ticket(facts.order_id, "owner", owner)
    )


async def flag_priority(facts: OrderFacts, *, priority: str, note: str, attribution: Attribution) -> LedgerWrite:
    """Flag the order's handling priority; its latest ticket takes the priority."""
    values = {"order_id": facts.order_id, "kind": "flag_priority", "priority": priority, "note": note}
    return await insert_once(
        "ticket_updates",
        values,
        attribution,
        after_insert=_apply_to_latest_ticket(facts.order_id, "priority", priority),
    )
