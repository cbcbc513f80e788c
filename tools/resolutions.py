"""A deviation's life in the database: read it, move its status, record its resolution and remember it as a case.

Status moves forward only: open -> in_progress -> awaiting_approval -> resolved | escalated | dismissed (a
resumed thread may go from awaiting_approval back to in_progress while it executes). The resolution is stored
on the deviation row (``GET /agent-response/{id}`` answers it) and ingested into the ``cases`` collection,
which specialists search for similar past cases; recording the same resolution again replaces the case.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from psycopg.types.json import Jsonb

from tools.deps import current

log = logging.getLogger(__name__)

Status = Literal["open", "in_progress", "awaiting_approval", "resolved", "escalated", "dismissed"]
FINAL: tuple[Status, ...] = ("resolved", "escalated", "dismissed")


class DeviationNotFound(LookupError):
    """No deviation with that id (or for that order)."""


async def load_deviation(deviation_id: str | None = None, order_id: str | None = None) -> dict[str, Any]:
    """The deviation row by id, else the one of ``order_id``; raises :class:`DeviationNotFound`."""
    if deviation_id is None and order_id is None:
        raise DeviationNotFound("a deviation_id or an order_id is needed")
    column, value = ("deviation_id", deviation_id) if deviation_id is not None else ("order_id", order_id)
    async with current().pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT deviation_id::text, order_id, severity, reasons, status, thread_id, delay_probability, "  # noqa: S608
            f"resolution, created_at FROM deviations WHERE {column} = %s",
            (value,),
        )
        row = await cur.fetchone()
    if row is None:
        raise DeviationNotFound(f"no deviation with {column} {value!r}")
    return dict(row)


async def set_status(deviation_id: str, status: Status) -> None:
    """Move an unfinished deviation to ``status`` (a finished one keeps its final status)."""
    async with current().pool.connection() as conn:
        await conn.execute(
            "UPDATE deviations SET status = %s, updated_at = now() WHERE deviation_id = %s "
            "AND status NOT IN ('resolved', 'escalated', 'dismissed')",
            (status, deviation_id),
        )


async def record_resolution(deviation_id: str, status: Status, resolution: dict[str, Any], *, resolved_by: str,
                            case: dict[str, Any] | None) -> str | None:  # fmt: skip
    """Store the final status and resolution (idempotent), then the case; returns the case id (None when the
    knowledge base is not available, which the caller records)."""
    if status not in FINAL:
        raise ValueError(f"status: a resolution ends in one of {FINAL}, not {status!r}")
    deps = current()
    async with deps.pool.connection() as conn:
        await conn.execute(
            "UPDATE deviations SET status = %s, resolution = %s, resolved_at = coalesce(resolved_at, now()), "
            "resolved_by = %s, updated_at = now() WHERE deviation_id = %s",
            (status, Jsonb(resolution), resolved_by, deviation_id),
        )
    if case is None or deps.knowledge is None:
        return None
    knowledge = deps.knowledge
    async with deps.knowledge_lock:
        return await asyncio.to_thread(knowledge.add_case, case)
