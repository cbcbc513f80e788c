"""Reading deviations, predictions and what was done about an order, for the REST API and the graphs.

- :func:`list_deviations`: filters (severity, status, time range, warehouse block, shipping mode, order, batch)
  and paging (``limit``/``offset`` with the ``total`` that match), newest first;
- :func:`get_deviation`: one deviation with its order's segments and its thread link;
- :func:`order_view`: an order (as received, or the seeded row), its current prediction, its deviation, the
  actions the ledgers hold for it (refunds, store credits, notifications, tickets, shipment changes, and the
  interaction and ticket-update ledgers where they exist) and its thread link;
- :func:`list_predictions` / :func:`list_agent_responses`: a batch job's predictions, and its deviations whose
  workflow started or finished.

A thread link is the path of the deviation's thread in this API (``/threads/{thread_id}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from tools.deps import current

LEDGERS: tuple[tuple[str, str, str], ...] = (
    ("refund", "refunds", "refund_id"),
    ("store_credit", "store_credits", "credit_id"),
    ("notification", "notifications", "notification_id"),
    ("ticket", "tickets", "ticket_id"),
    ("shipment_change", "shipment_changes", "change_id"),
    ("interaction", "interactions", "interaction_id"),
    ("ticket_update", "ticket_updates", "update_id"),
)
"""(action kind, ledger table, id column) of every ledger keyed by ``order_id``; absent tables are skipped."""

_DEVIATION = """
SELECT d.deviation_id::text AS deviation_id, d.order_id, d.severity, d.status, d.reasons, d.delay_probability,
       d.batch_job_id::text AS batch_job_id, d.prediction_id, d.thread_id, d.resolution, d.created_at,
       d.updated_at, d.started_at, d.resolved_at, d.resolved_by, oi.warehouse_block, oi.mode_of_shipment,
       oi.customer_ref
FROM deviations d LEFT JOIN order_inputs oi ON oi.order_id = d.order_id
"""
_FILTERS = """
WHERE (%(severity)s::text[] IS NULL OR d.severity = ANY(%(severity)s::text[]))
  AND (%(status)s::text[] IS NULL OR d.status = ANY(%(status)s::text[]))
  AND (%(since)s::timestamptz IS NULL OR d.created_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR d.created_at < %(until)s::timestamptz)
  AND (%(warehouse)s::text IS NULL OR oi.warehouse_block = %(warehouse)s::text)
  AND (%(mode)s::text IS NULL OR oi.mode_of_shipment = %(mode)s::text)
  AND (%(order_id)s::text IS NULL OR d.order_id = %(order_id)s::text)
  AND (%(batch)s::uuid IS NULL OR d.batch_job_id = %(batch)s::uuid)
"""
_PREDICTION = """
SELECT p.prediction_id, p.order_id, p.batch_job_id::text AS batch_job_id, p.source, p.delay_probability,
       p.severity, p.model_version, p.top_features, p.features, p.anomaly_score, p.is_anomaly,
       p.anomaly_model_version, p.order_value::float8 AS order_value, p.created_at, p.updated_at
FROM predictions p
"""


@dataclass(frozen=True)
class DeviationFilter:
    """What :func:`list_deviations` keeps (None = any)."""

    severity: list[str] | None = None
    status: list[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    warehouse_block: str | None = None
    mode_of_shipment: str | None = None
    order_id: str | None = None
    batch_job_id: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "severity": self.severity or None,
            "status": self.status or None,
            "since": self.since,
            "until": self.until,
            "warehouse": self.warehouse_block,
            "mode": self.mode_of_shipment,
            "order_id": self.order_id,
            "batch": self.batch_job_id,
        }


class Page(TypedDict):
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


def thread_url(thread_id: str | None) -> str | None:
    return f"/threads/{thread_id}" if thread_id else None


def _deviation(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "thread_url": thread_url(row.get("thread_id"))}


def _pool(pool: AsyncConnectionPool[Any] | None) -> AsyncConnectionPool[Any]:
    return pool or current().pool


async def list_deviations(
    where: DeviationFilter, *, limit: int = 50, offset: int = 0, pool: AsyncConnectionPool[Any] | None = None
) -> Page:
    """Deviations matching ``where``, newest first: one page and the total."""
    params = {**where.params(), "limit": limit, "offset": offset}
    async with _pool(pool).connection() as conn:
        counted = await (
            await conn.execute(
                "SELECT count(*) AS n FROM deviations d LEFT JOIN order_inputs oi ON oi.order_id = d.order_id"  # noqa: S608
                + _FILTERS,
                params,
            )
        ).fetchone()
        cur = await conn.execute(
            _DEVIATION + _FILTERS + " ORDER BY d.created_at DESC, d.deviation_id LIMIT %(limit)s OFFSET %(offset)s",
            params,
        )
        rows = await cur.fetchall()
    total = int(counted["n"]) if counted else 0
    return Page(total=total, limit=limit, offset=offset, items=[_deviation(r) for r in rows])


async def get_deviation(deviation_id: str, pool: AsyncConnectionPool[Any] | None = None) -> dict[str, Any] | None:
    """One deviation (None when there is no such id)."""
    async with _pool(pool).connection() as conn:
        cur = await conn.execute(_DEVIATION + " WHERE d.deviation_id = %s::uuid", (deviation_id,))
        row = await cur.fetchone()
    return _deviation(row) if row else None


async def _actions(conn: Any, order_id: str) -> list[dict[str, Any]]:
    names = [table for _, table, _ in LEDGERS]
    cur = await conn.execute("SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL", (names,))
    present = {row["t"] for row in await cur.fetchall()}
    parts = [
        sql.SQL(
            "SELECT {kind}::text AS kind, {id}::text AS action_id, created_at, actor, policy_rule, thread_id, "
            "to_jsonb(t) - 'idempotency_key' AS details FROM {table} t WHERE order_id = %(order_id)s"
        ).format(kind=sql.Literal(kind), id=sql.Identifier(id_column), table=sql.Identifier(table))
        for kind, table, id_column in LEDGERS
        if table in present
    ]
    if not parts:
        return []
    query = sql.SQL(" UNION ALL ").join(parts) + sql.SQL(" ORDER BY created_at, kind, action_id")
    cur = await conn.execute(query, {"order_id": order_id})
    return list(await cur.fetchall())


async def order_view(order_id: str, pool: AsyncConnectionPool[Any] | None = None) -> dict[str, Any] | None:
    """Everything about one order; None when neither the pipeline nor the seeded tables know it."""
    async with _pool(pool).connection() as conn:
        cur = await conn.execute(
            "SELECT order_id, customer_ref, data, source, batch_job_id::text AS batch_job_id, known_order, "
            "first_seen_at, updated_at FROM order_inputs WHERE order_id = %s",
            (order_id,),
        )
        received = await cur.fetchone()
        cur = await conn.execute("SELECT to_jsonb(o) AS row FROM orders o WHERE o.order_id = %s", (order_id,))
        seeded = await cur.fetchone()
        if received is None and seeded is None:
            return None
        prediction = await (await conn.execute(_PREDICTION + " WHERE p.order_id = %s", (order_id,))).fetchone()
        deviation = await (await conn.execute(_DEVIATION + " WHERE d.order_id = %s", (order_id,))).fetchone()
        actions = await _actions(conn, order_id)
    thread_id = deviation["thread_id"] if deviation else None
    customer = received["customer_ref"] if received else str(seeded["row"]["customer_id"]) if seeded else None
    return {
        "order_id": order_id,
        "known_order": seeded is not None,
        "customer_ref": customer,
        "source": received["source"] if received else None,
        "first_seen_at": received["first_seen_at"] if received else None,
        "order": received["data"] if received else seeded["row"] if seeded else None,
        "prediction": prediction,
        "deviation": _deviation(deviation) if deviation else None,
        "actions": actions,
        "thread_id": thread_id,
        "thread_url": thread_url(thread_id),
    }


async def list_predictions(
    batch_job_id: str, *, limit: int = 100, offset: int = 0, pool: AsyncConnectionPool[Any] | None = None
) -> Page:
    """The predictions a batch job (or event micro-batch) wrote last, by order id."""
    async with _pool(pool).connection() as conn:
        counted = await (
            await conn.execute("SELECT count(*) AS n FROM predictions WHERE batch_job_id = %s::uuid", (batch_job_id,))
        ).fetchone()
        cur = await conn.execute(
            _PREDICTION + " WHERE p.batch_job_id = %s::uuid ORDER BY p.order_id LIMIT %s OFFSET %s",
            (batch_job_id, limit, offset),
        )
        rows = await cur.fetchall()
    return Page(total=int(counted["n"]) if counted else 0, limit=limit, offset=offset, items=list(rows))


async def list_agent_responses(
    batch_job_id: str, *, limit: int = 100, offset: int = 0, pool: AsyncConnectionPool[Any] | None = None
) -> Page:
    """A batch job's deviations whose workflow started (a thread) or ended (a resolution), oldest start first."""
    where = " WHERE d.batch_job_id = %s::uuid AND (d.thread_id IS NOT NULL OR d.resolution IS NOT NULL)"
    async with _pool(pool).connection() as conn:
        counted = await (
            await conn.execute("SELECT count(*) AS n FROM deviations d" + where, (batch_job_id,))  # noqa: S608
        ).fetchone()
        cur = await conn.execute(
            _DEVIATION + where + " ORDER BY d.started_at NULLS LAST, d.deviation_id LIMIT %s OFFSET %s",
            (batch_job_id, limit, offset),
        )
        rows = await cur.fetchall()
    return Page(
        total=int(counted["n"]) if counted else 0, limit=limit, offset=offset, items=[_deviation(r) for r in rows]
    )
