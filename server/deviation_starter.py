"""Start the ``deviation`` workflow for deviations: one thread per deviation, queued as a background run.

Called by the scoring pipeline for deviations at the policy's auto-start level, and by ``POST /trigger-agent``.
The thread id is derived from the deviation (``deviation-<id>``), and the deviation row is marked as started
(``thread_id``, status ``in_progress``) in the same transaction that queues the run, so a deviation gets its
thread at most once even when two processes (or a retried request) try at the same moment, and a crash
between the two cannot leave one without the other. Concurrency is bounded by the run queue's workers: a
batch of hundreds of critical deviations becomes hundreds of queued runs that the workers take in turn, at a
lower priority than the runs people wait on, so an approver's decision does not queue behind the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from server.auth import Principal
from server.runtime.core import Runtime
from server.runtime.queue import Within
from server.runtime.schemas import RunCreate

log = logging.getLogger(__name__)

ASSISTANT = "deviation"
BACKGROUND = -1
"""Queue priority of the threads started here: below the runs people wait on (a decision, a chat question)."""


class AlreadyStarted(Exception):
    """The deviation already has its thread (or does not exist)."""


def thread_id_for(deviation_id: str) -> str:
    return f"deviation-{deviation_id}"


async def riskiest_first(pool: Any, deviation_ids: Sequence[str]) -> list[str]:
    """``deviation_ids`` ordered as their threads should start: the highest delay probability first, then the
    largest order value (the queue takes runs of one priority oldest first, so this is the order they run in)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT d.deviation_id::text AS id FROM deviations d LEFT JOIN predictions p ON p.order_id = d.order_id "
            "WHERE d.deviation_id = ANY(%s::uuid[]) "
            "ORDER BY d.delay_probability DESC NULLS LAST, p.order_value DESC NULLS LAST, d.deviation_id",
            (list(deviation_ids),),
        )
        return [r["id"] for r in await cur.fetchall()]


def _claimer(deviation_id: str, thread_id: str) -> Within:
    """Mark the deviation started by this thread, in the run's transaction; refuse when it already has one."""

    async def claim(conn: AsyncConnection[Any]) -> None:
        cur = await conn.execute(
            "UPDATE deviations SET thread_id = %s, status = 'in_progress', started_at = now(), updated_at = now() "
            "WHERE deviation_id = %s AND thread_id IS NULL RETURNING deviation_id",
            (thread_id, deviation_id),
        )
        if await cur.fetchone() is None:
            raise AlreadyStarted(deviation_id)

    return claim


async def start_deviation_threads(runtime: Runtime | None, deviation_ids: Sequence[str], *, actor: str) -> list[str]:
    """Queue a ``deviation`` run for each deviation that has no thread yet; returns the thread ids started.

    ``actor`` names who started them (``system:auto-start``, or the key name behind ``/trigger-agent``). Without
    a runtime serving the ``deviation`` assistant nothing starts and the deviations stay ``open`` (logged)."""
    if not deviation_ids:
        return []
    if runtime is None or ASSISTANT not in runtime.registry:
        log.warning("deviation workflow not served: deviations stay open", extra={"deviations": len(deviation_ids)})
        return []
    principal = Principal(id=actor, role="operator")
    started: list[str] = []
    for deviation_id in dict.fromkeys(str(d) for d in deviation_ids):
        thread_id = thread_id_for(deviation_id)

        claim = _claimer(deviation_id, thread_id)
        body = RunCreate(
            assistant_id=ASSISTANT, input={"deviation_id": deviation_id}, if_not_exists="create",
            metadata={"deviation_id": deviation_id, "started_by": actor},
        )  # fmt: skip
        try:
            await runtime.manager.start(thread_id, body, principal, "background", within=claim, priority=BACKGROUND)
        except AlreadyStarted:
            continue
        started.append(thread_id)
    if started:
        log.info("deviation threads started", extra={"count": len(started), "actor": actor})
    return started
