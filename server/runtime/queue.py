"""SQL of the run queue (migration 0003): enqueue under a multitask strategy, claim, lease, requeue, events.

A run is a ``runs`` row. :func:`enqueue` records it ``pending`` in the same transaction that locks the thread
and applies the ``multitask_strategy`` to the thread's runs in flight; :func:`claim` hands the oldest
claimable run to a worker (``FOR UPDATE SKIP LOCKED``, so concurrent workers in any process never take the
same run) and marks its thread busy; the worker renews the run's lease while it executes; a run whose lease
lapsed is queued again (:func:`requeue_expired`). A thread runs one run at a time, oldest first.

Notifications (``pg_notify``, sent at commit) wake the other processes: :data:`RUNS` when a run may be
claimed, :data:`CANCEL` when a running run must stop, :data:`EVENTS` when a run wrote events or ended.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection, AsyncCursor
from psycopg.types.json import Jsonb

from server.errors import ApiError
from server.runtime.serde import to_jsonable
from server.runtime.store import Pool, Row

RUNS = "rimas_runs"
CANCEL = "rimas_cancel"
EVENTS = "rimas_events"
Strategy = Literal["reject", "enqueue", "interrupt", "rollback"]
Prepare = Callable[[Row], Awaitable[None]]
Within = Callable[[AsyncConnection[Any]], Awaitable[None]]


@dataclass(frozen=True)
class NewRun:
    """What is recorded when a run is queued."""

    run_id: str
    thread_id: str
    assistant_id: str
    graph_id: str
    multitask_strategy: Strategy
    kwargs: Mapping[str, Any]
    metadata: Mapping[str, Any]
    actor: str
    accepted_by: int
    persist_events: bool
    after_seconds: float | None = None
    webhook: str | None = None
    priority: int = 0  # workers take higher priorities first (system-started runs are below 0)


# Transactions that change a thread's runs and its row lock the thread first (enqueue does, under its
# strategy), so two of them never wait on each other in opposite orders.
_LOCK_THREAD = "SELECT 1 FROM threads WHERE thread_id = %s FOR UPDATE"
_LOCK_THREAD_OF_RUN = (
    "SELECT 1 FROM threads t JOIN runs r ON r.thread_id = t.thread_id WHERE r.run_id = %s FOR UPDATE OF t"
)


async def notify(conn: AsyncConnection[Any], channel: str, payload: str) -> None:
    await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))


_INFLIGHT = (
    "SELECT run_id, status FROM runs WHERE thread_id = %s AND status IN ('pending', 'running') "
    "ORDER BY created_at, run_id"
)


async def _locked_thread(conn: AsyncConnection[Any], run: NewRun, create: bool) -> tuple[Row, list[Row]]:
    """The thread's row, locked, and its runs in flight read once the lock is held (both statements go out
    together: in a pipeline the second runs after the first got the lock, with a snapshot of its own)."""
    locked = await conn.execute("SELECT * FROM threads WHERE thread_id = %s FOR UPDATE", (run.thread_id,))
    runs = await conn.execute(_INFLIGHT, (run.thread_id,))
    row = await locked.fetchone()
    if row is None:
        if not create:
            raise ApiError(404, "not_found", f"thread {run.thread_id} not found; create it or pass "
                           "if_not_exists='create'")  # fmt: skip
        await conn.execute(
            "INSERT INTO threads (thread_id, created_by, assistant_id, metadata) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (thread_id) DO NOTHING",
            (run.thread_id, run.actor, run.graph_id, Jsonb({})),
        )
        locked = await conn.execute("SELECT * FROM threads WHERE thread_id = %s FOR UPDATE", (run.thread_id,))
        runs = await conn.execute(_INFLIGHT, (run.thread_id,))
        row = await locked.fetchone()
        assert row is not None
    return dict(row), [dict(r) for r in await runs.fetchall()]


async def enqueue(
    pool: Pool, run: NewRun, *, create: bool, prepare: Prepare | None = None, exclusive: bool = False,
    claim_for: int | None = None, lease_s: float = 30.0, within: Within | None = None,
) -> tuple[Row, list[Row], Row | None]:
    """Queue ``run`` on its thread, applying its strategy to the runs in flight; returns the thread row as it
    was, the runs the strategy stopped (``interrupt``/``rollback``: each is marked with that action, and
    the running ones are told through :data:`CANCEL`), and the run's row when ``claim_for`` claimed it.

    ``reject`` refuses (409) while the thread has a run in flight; ``enqueue`` queues behind them;
    ``interrupt`` and ``rollback`` stop them first. ``prepare(row)`` runs inside the transaction (it may raise
    to refuse the run, e.g. a resume of a thread that is not interrupted). An ``exclusive`` run (one that
    answers an interrupt) is refused while anything is in flight, whatever its strategy: it answers the
    interrupt pending now, so it cannot wait behind a run that may change it.

    ``claim_for`` (an owner key) claims the run in the same transaction when the thread is free, for the
    process that accepted it; otherwise the run waits and the workers are told when it may be claimed.
    ``within(conn)`` writes what must commit with the run, or raises to refuse it (e.g. a deviation that
    already has its thread)."""
    # pipelined: the lock and the runs in flight in one round trip, the writes and the commit in another
    async with pool.connection() as conn, conn.pipeline():
        async with conn.transaction():
            before, stopped, inserted = await _enqueue(conn, run, create, prepare, exclusive, claim_for, lease_s)
            if within is not None:
                await within(conn)
        row = await inserted.fetchone() if inserted is not None else None
    return before, stopped, dict(row) if row is not None else None


async def _enqueue(
    conn: AsyncConnection[Any], run: NewRun, create: bool, prepare: Prepare | None, exclusive: bool,
    claim_for: int | None, lease_s: float,
) -> tuple[Row, list[Row], AsyncCursor[Any] | None]:  # fmt: skip
    """:func:`enqueue`'s transaction; returns the cursor of the inserted row when the run was claimed."""
    before, inflight = await _locked_thread(conn, run, create)
    if inflight and exclusive:
        raise ApiError(409, "thread_busy", f"thread {run.thread_id} has run {inflight[0]['run_id']} in flight; "
                       "an answer to an interrupt needs the thread waiting at it")  # fmt: skip
    if inflight and run.multitask_strategy == "reject":
        raise ApiError(409, "thread_busy", f"thread {run.thread_id} has run {inflight[0]['run_id']} in flight; "
                       "multitask_strategy 'reject' refuses a second run (wait for it, cancel it, or send "
                       "multitask_strategy 'enqueue', 'interrupt' or 'rollback')")  # fmt: skip
    if prepare is not None:
        await prepare(before)
    stopped: list[Row] = []
    if inflight and run.multitask_strategy in ("interrupt", "rollback"):
        ids = [str(r["run_id"]) for r in inflight]
        await conn.execute("UPDATE runs SET cancel_action = %s, updated_at = now() WHERE run_id = ANY(%s::uuid[])",
                           (run.multitask_strategy, ids))  # fmt: skip
        stopped = inflight
    claim_now = (claim_for is not None and not inflight and before["current_run_id"] is None
                 and not run.after_seconds)  # fmt: skip
    cur = await conn.execute(
        "INSERT INTO runs (run_id, thread_id, assistant_id, status, multitask_strategy, kwargs, metadata, actor, "
        "accepted_by, persist_events, webhook, not_before, attempt, owner_key, lease_expires_at, started_at, "
        "priority) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s), %s, %s, "
        "CASE WHEN %s THEN now() + make_interval(secs => %s) END, CASE WHEN %s THEN now() END, %s) RETURNING *",
        (run.run_id, run.thread_id, run.assistant_id, "running" if claim_now else "pending",
         run.multitask_strategy, Jsonb(to_jsonable(dict(run.kwargs))), Jsonb(dict(run.metadata)), run.actor,
         run.accepted_by, run.persist_events, run.webhook, run.after_seconds or 0, 1 if claim_now else 0,
         claim_for if claim_now else None, claim_now, lease_s, claim_now, run.priority),
    )  # fmt: skip
    await conn.execute(  # the run stamps its graph on the thread, its assistant in the metadata (UIs search by both)
        "UPDATE threads SET assistant_id = %s, config = %s, updated_at = now(), metadata = metadata || %s, "
        "status = CASE WHEN %s THEN 'busy' ELSE status END, "
        "current_run_id = CASE WHEN %s THEN %s::uuid ELSE current_run_id END WHERE thread_id = %s",
        (run.graph_id, Jsonb(to_jsonable(run.kwargs.get("config") or {})),
         Jsonb({"graph_id": run.graph_id, "assistant_id": run.assistant_id}), claim_now,
         claim_now, run.run_id, run.thread_id),
    )  # fmt: skip
    for row in stopped:
        if row["status"] == "running":
            await notify(conn, CANCEL, str(row["run_id"]))
    if not claim_now and not inflight:  # claimable now (or at not_before) by any process's workers
        await notify(conn, RUNS, run.run_id)
    return before, stopped, cur if claim_now else None


_CLAIMABLE = """
SELECT r.run_id FROM runs r JOIN threads t ON t.thread_id = r.thread_id
WHERE r.status = 'pending' AND r.not_before <= now() AND r.cancel_action IS NULL
  AND (t.current_run_id IS NULL OR t.current_run_id = r.run_id)
  AND NOT EXISTS (SELECT 1 FROM runs e WHERE e.thread_id = r.thread_id AND e.run_id <> r.run_id
                  AND (e.status = 'running'
                       OR (e.status = 'pending' AND (e.created_at, e.run_id) < (r.created_at, r.run_id))))
  {only}
ORDER BY r.priority DESC, r.created_at, r.run_id
LIMIT 1
FOR UPDATE OF r, t SKIP LOCKED
"""


async def claim(pool: Pool, owner_key: int, lease_s: float, run_id: str | None = None) -> Row | None:
    """The oldest claimable run (or ``run_id`` if it is claimable), now ``running`` under this process's
    lease with its thread busy; None when there is none."""
    only = "AND r.run_id = %s" if run_id is not None else ""
    params = (run_id,) if run_id is not None else ()
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(_CLAIMABLE.format(only=only), params)
        found = await cur.fetchone()
        if found is None:
            return None
        cur = await conn.execute(
            "UPDATE runs SET status = 'running', attempt = attempt + 1, owner_key = %s, updated_at = now(), "
            "lease_expires_at = now() + make_interval(secs => %s), started_at = coalesce(started_at, now()) "
            "WHERE run_id = %s RETURNING *",
            (owner_key, lease_s, found["run_id"]),
        )
        row = await cur.fetchone()
        assert row is not None
        await conn.execute(
            "UPDATE threads SET status = 'busy', current_run_id = %s, updated_at = now() WHERE thread_id = %s",
            (row["run_id"], row["thread_id"]),
        )
    return dict(row)


async def finish(
    pool: Pool, *, run_id: str, thread_id: str, status: str, error: str | None, thread_status: str,
    interrupts: list[dict[str, Any]], interrupted_at: dt.datetime | None,
) -> None:  # fmt: skip
    """Record a run's outcome and release its thread (if the run still holds it); in the same transaction,
    wake the run's listeners in every process and, when the thread has a run queued next, the workers (all
    in one round trip: nothing is read back)."""
    async with pool.connection() as conn, conn.pipeline(), conn.transaction():
        await conn.execute(_LOCK_THREAD, (thread_id,))
        await conn.execute(
            "UPDATE runs SET status = %s, error = %s, ended_at = now(), updated_at = now() WHERE run_id = %s",
            (status, error, run_id),
        )
        await conn.execute(
            "UPDATE threads SET status = %s, interrupts = %s, interrupted_at = %s, current_run_id = NULL, "
            "updated_at = now() WHERE thread_id = %s AND current_run_id = %s",
            (thread_status, Jsonb(interrupts), interrupted_at, thread_id, run_id),
        )
        await conn.execute(
            "SELECT pg_notify(%s, %s), CASE WHEN EXISTS (SELECT 1 FROM runs WHERE thread_id = %s AND status = "
            "'pending') THEN pg_notify(%s, %s) END",
            (EVENTS, run_id, thread_id, RUNS, run_id),
        )


async def renew(pool: Pool, run_ids: Sequence[str], lease_s: float) -> None:
    """Extend the leases of runs this process executes."""
    if run_ids:
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE runs SET lease_expires_at = now() + make_interval(secs => %s) "
                "WHERE run_id = ANY(%s::uuid[]) AND status = 'running'",
                (lease_s, list(run_ids)),
            )


async def requeue(pool: Pool, run_ids: Sequence[str]) -> None:
    """Put running runs back in the queue (a draining process hands them over); their threads stay theirs."""
    if run_ids:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE runs SET status = 'pending', lease_expires_at = NULL, owner_key = NULL, updated_at = now() "
                "WHERE run_id = ANY(%s::uuid[]) AND status = 'running'",
                (list(run_ids),),
            )
            for run_id in run_ids:
                await notify(conn, RUNS, run_id)


async def cancel_action(pool: Pool, run_id: str) -> str | None:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT cancel_action FROM runs WHERE run_id = %s", (run_id,))
        row = await cur.fetchone()
    return row["cancel_action"] if row is not None else None


async def request_cancel(pool: Pool, thread_id: str, run_id: str, action: str) -> Row | None:
    """Mark a run in flight to stop with ``action``; tells its process. None when it is no longer in flight."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE runs SET cancel_action = %s, updated_at = now() WHERE run_id = %s AND thread_id = %s "
            "AND status IN ('pending', 'running') RETURNING *",
            (action, run_id, thread_id),
        )
        row = await cur.fetchone()
        if row is not None and row["status"] == "running":
            await notify(conn, CANCEL, run_id)
    return dict(row) if row is not None else None


async def drop_pending(pool: Pool, run_id: str, action: str) -> Row | None:
    """End a pending run that never started: ``interrupt`` records it as interrupted, ``rollback`` deletes it."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(_LOCK_THREAD_OF_RUN, (run_id,))
        if action == "rollback":
            cur = await conn.execute("DELETE FROM runs WHERE run_id = %s AND status = 'pending' RETURNING *", (run_id,))
        else:
            cur = await conn.execute(
                "UPDATE runs SET status = 'interrupted', error = 'stopped before it started', ended_at = now(), "
                "updated_at = now() WHERE run_id = %s AND status = 'pending' RETURNING *",
                (run_id,),
            )
        row = await cur.fetchone()
        if row is not None:
            await conn.execute(  # a run requeued after a crash still holds its thread
                "UPDATE threads SET current_run_id = NULL, status = CASE WHEN status = 'busy' THEN 'idle' "
                "ELSE status END, updated_at = now() WHERE thread_id = %s AND current_run_id = %s",
                (row["thread_id"], run_id),
            )
            await notify(conn, EVENTS, run_id)
            await notify(conn, RUNS, run_id)
    return dict(row) if row is not None else None


async def delete_run_checkpoints(conn: AsyncConnection[Any], thread_id: str, run_id: str) -> int:
    """Remove the checkpoints a run wrote (``rollback``), with their pending writes; returns how many."""
    cur = await conn.execute(
        "DELETE FROM checkpoints WHERE thread_id = %s AND metadata->>'run_id' = %s RETURNING checkpoint_id",
        (thread_id, run_id),
    )
    ids = [r["checkpoint_id"] for r in await cur.fetchall()]
    if ids:
        await conn.execute(
            "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id = ANY(%s)", (thread_id, ids)
        )
    return len(ids)


# -- events ---------------------------------------------------------------------------------------------------


async def write_events(pool: Pool, run_id: str, events: Sequence[tuple[int, str, str]]) -> None:
    """Append ``(seq, event, data)`` rows (a replay of the same seq is ignored) and tell the listeners."""
    if not events:
        return
    async with pool.connection() as conn, conn.transaction():
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO run_events (run_id, seq, event, data) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(run_id, seq, event, data) for seq, event, data in events],
            )
        await notify(conn, EVENTS, run_id)


async def poll_events(
    pool: Pool, thread_id: str, run_id: str, after: int, limit: int = 500
) -> tuple[list[Row], str | None]:
    """The run's recorded events after ``after`` and its status (None: no such run), read in one snapshot."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT status FROM runs WHERE run_id = %s AND thread_id = %s) AS status, e.seq, e.event, e.data "
            "FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT seq, event, data FROM run_events WHERE run_id = %s "
            "AND seq > %s ORDER BY seq LIMIT %s) AS e ON true ORDER BY e.seq",
            (run_id, thread_id, run_id, after, limit),
        )  # fmt: skip
        rows = await cur.fetchall()
    status = rows[0]["status"] if rows else None
    return [{"seq": r["seq"], "event": r["event"], "data": r["data"]} for r in rows if r["seq"] is not None], status


async def last_seq(pool: Pool, run_id: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT coalesce(max(seq), 0) AS seq FROM run_events WHERE run_id = %s", (run_id,))
        row = await cur.fetchone()
    return int(row["seq"]) if row is not None else 0
