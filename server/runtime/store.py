"""SQL over the ``threads`` index and the ``runs`` record (migration 0002).

Queuing and claiming runs (one run at a time per thread, decided in PostgreSQL, so racing requests in any
number of processes cannot both start one) is in :mod:`server.runtime.queue`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from server.errors import ApiError

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
RunStatus = Literal["pending", "running", "success", "error", "interrupted", "timeout"]
THREAD_STATUSES: tuple[ThreadStatus, ...] = ("idle", "busy", "interrupted", "error")
RUN_STATUSES: tuple[RunStatus, ...] = ("pending", "running", "success", "error", "interrupted", "timeout")
ENDED: tuple[RunStatus, ...] = ("success", "error", "interrupted", "timeout")  # a run in these states is over
THREAD_SORT = ("thread_id", "status", "created_at", "updated_at")

Row = dict[str, Any]
Pool = AsyncConnectionPool[Any]


# -- threads --------------------------------------------------------------------------------------------------


async def create_thread(
    pool: Pool, thread_id: str, metadata: Mapping[str, Any], created_by: str, if_exists: str
) -> Row:
    """Insert a thread; an existing id is a 409 unless ``if_exists='do_nothing'`` (then it is returned)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO threads (thread_id, metadata, created_by) VALUES (%s, %s, %s) "
            "ON CONFLICT (thread_id) DO NOTHING RETURNING *",
            (thread_id, Jsonb(dict(metadata)), created_by),
        )
        row = await cur.fetchone()
        if row is not None:
            return dict(row)
        if if_exists != "do_nothing":
            raise ApiError(
                409, "conflict", f"thread {thread_id} already exists; pass if_exists='do_nothing' to reuse it"
            )
        existing = await get_thread(conn, thread_id)
    if existing is None:  # deleted between the two statements
        raise ApiError(409, "conflict", f"thread {thread_id} was deleted while being created; retry")
    return existing


async def get_thread(conn: AsyncConnection[Any], thread_id: str) -> Row | None:
    cur = await conn.execute("SELECT * FROM threads WHERE thread_id = %s", (thread_id,))
    row = await cur.fetchone()
    return dict(row) if row is not None else None


async def fetch_thread(pool: Pool, thread_id: str) -> Row:
    """The thread's index row, or a 404 naming it."""
    async with pool.connection() as conn:
        row = await get_thread(conn, thread_id)
    if row is None:
        raise ApiError(404, "not_found", f"thread {thread_id} not found")
    return row


async def patch_thread(pool: Pool, thread_id: str, metadata: Mapping[str, Any]) -> Row:
    """Merge ``metadata`` into the thread's metadata."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE threads SET metadata = metadata || %s, updated_at = now() WHERE thread_id = %s RETURNING *",
            (Jsonb(dict(metadata)), thread_id),
        )
        row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "not_found", f"thread {thread_id} not found")
    return dict(row)


async def delete_thread(conn: AsyncConnection[Any], thread_id: str) -> None:
    """Delete an idle thread's row (its runs go with it); a busy thread is a 409."""
    cur = await conn.execute(
        "DELETE FROM threads WHERE thread_id = %s AND status <> 'busy' RETURNING thread_id", (thread_id,)
    )
    if await cur.fetchone() is None:
        row = await get_thread(conn, thread_id)
        if row is None:
            raise ApiError(404, "not_found", f"thread {thread_id} not found")
        raise ApiError(
            409, "thread_busy", f"thread {thread_id} is busy with run {row['current_run_id']}; cancel it first"
        )


def where(*conditions: tuple[sql.Composable, Any]) -> tuple[sql.Composable, list[Any]]:
    """`` WHERE a AND b ...`` of the conditions (each a fixed SQL fragment with one ``%s``, and its value) whose
    value is given: a None value leaves its condition out, and no condition left, no ``WHERE``."""
    kept = [(clause, value) for clause, value in conditions if value is not None]
    if not kept:
        return sql.SQL(""), []
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(c for c, _ in kept), [v for _, v in kept]


def metadata_contains(metadata: Mapping[str, Any] | None) -> tuple[sql.Composable, Any]:
    """The condition "``metadata`` holds these keys and values" (none when ``metadata`` is empty)."""
    return sql.SQL("metadata @> %s"), Jsonb(dict(metadata)) if metadata else None


def _thread_filters(
    metadata: Mapping[str, Any] | None, status: str | None, ids: Sequence[str] | None
) -> tuple[sql.Composable, list[Any]]:
    return where(metadata_contains(metadata), (sql.SQL("status = %s"), status or None),
                 (sql.SQL("thread_id = ANY(%s)"), list(ids) if ids else None))  # fmt: skip


async def search_threads(
    pool: Pool,
    *,
    metadata: Mapping[str, Any] | None = None,
    status: str | None = None,
    ids: Sequence[str] | None = None,
    limit: int = 10,
    offset: int = 0,
    sort_by: str = "created_at",
    sort_order: str = "desc",
) -> list[Row]:
    where, params = _thread_filters(metadata, status, ids)
    order = sql.SQL("ASC") if sort_order == "asc" else sql.SQL("DESC")
    query = sql.SQL("SELECT * FROM threads{} ORDER BY {} {}, thread_id LIMIT %s OFFSET %s").format(
        where, sql.Identifier(sort_by), order
    )
    async with pool.connection() as conn:
        cur = await conn.execute(query, [*params, limit, offset])
        return [dict(r) for r in await cur.fetchall()]


async def count_threads(pool: Pool, *, metadata: Mapping[str, Any] | None = None, status: str | None = None) -> int:
    where, params = _thread_filters(metadata, status, None)
    async with pool.connection() as conn:
        cur = await conn.execute(sql.SQL("SELECT count(*) AS n FROM threads{}").format(where), params)
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def interrupted_threads(pool: Pool, assistant_id: str | None = None) -> list[Row]:
    """Threads waiting at an interrupt, the longest-waiting first."""
    query = "SELECT * FROM threads WHERE status = 'interrupted'"
    params: list[Any] = []
    if assistant_id:
        query += " AND assistant_id = %s"
        params.append(assistant_id)
    async with pool.connection() as conn:
        cur = await conn.execute(query + " ORDER BY interrupted_at NULLS LAST, thread_id", params)
        return [dict(r) for r in await cur.fetchall()]


async def copy_thread(pool: Pool, source: str, target: str, created_by: str) -> Row:
    """A new thread ``target`` with the index row, metadata and every checkpoint (all namespaces, blobs and
    pending writes) of ``source``, in one transaction; a busy source is a 409."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute("SELECT * FROM threads WHERE thread_id = %s FOR SHARE", (source,))
        row = await cur.fetchone()
        if row is None:
            raise ApiError(404, "not_found", f"thread {source} not found")
        if row["status"] == "busy":
            raise ApiError(409, "thread_busy", f"thread {source} is busy with run {row['current_run_id']}; copy it "
                           "when the run has ended")  # fmt: skip
        cur = await conn.execute(
            "INSERT INTO threads (thread_id, metadata, created_by, assistant_id, status, interrupts, interrupted_at) "
            "SELECT %s, metadata, %s, assistant_id, status, interrupts, interrupted_at FROM threads "
            "WHERE thread_id = %s RETURNING *",
            (target, created_by, source),
        )
        copied = await cur.fetchone()
        await conn.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
            "metadata) SELECT %s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
            "jsonb_set(metadata, '{thread_id}', to_jsonb(%s::text)) FROM checkpoints WHERE thread_id = %s",
            (target, target, source),
        )
        await conn.execute(
            "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob) "
            "SELECT %s, checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs WHERE thread_id = %s",
            (target, source),
        )
        await conn.execute(
            "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, "
            "blob, task_path) SELECT %s, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob, task_path "
            "FROM checkpoint_writes WHERE thread_id = %s",
            (target, source),
        )
    assert copied is not None
    return dict(copied)


async def set_thread_state(
    conn: AsyncConnection[Any],
    thread_id: str,
    status: ThreadStatus,
    interrupts: list[dict[str, Any]],
    interrupted_at: dt.datetime | None,
) -> None:
    """Re-derive an idle thread's index row after its state was written outside a run."""
    await conn.execute(
        "UPDATE threads SET status = %s, interrupts = %s, interrupted_at = %s, updated_at = now() "
        "WHERE thread_id = %s AND status <> 'busy'",
        (status, Jsonb(interrupts), interrupted_at, thread_id),
    )


async def lock_thread(conn: AsyncConnection[Any], thread_id: str) -> Row:
    """The thread's row, locked for this transaction (404 if missing, 409 if a run holds it or waits for it)."""
    cur = await conn.execute("SELECT * FROM threads WHERE thread_id = %s FOR UPDATE", (thread_id,))
    row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "not_found", f"thread {thread_id} not found")
    if row["status"] == "busy":
        raise ApiError(409, "thread_busy", f"thread {thread_id} is busy with run {row['current_run_id']}; wait for "
                       "it or cancel it")  # fmt: skip
    cur = await conn.execute(
        "SELECT run_id FROM runs WHERE thread_id = %s AND status = 'pending' ORDER BY created_at LIMIT 1", (thread_id,)
    )
    queued = await cur.fetchone()
    if queued is not None:  # it would start from a state it was not queued on
        raise ApiError(409, "thread_busy", f"thread {thread_id} has run {queued['run_id']} queued; wait for it or "
                       "cancel it")  # fmt: skip
    return dict(row)


# -- claiming and finishing runs ------------------------------------------------------------------------------

# -- runs -----------------------------------------------------------------------------------------------------


async def get_run(pool: Pool, thread_id: str, run_id: str) -> Row:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM runs WHERE run_id = %s AND thread_id = %s", (run_id, thread_id))
        row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "not_found", f"run {run_id} not found in thread {thread_id}")
    return dict(row)


async def list_runs(pool: Pool, thread_id: str, *, limit: int, offset: int, status: str | None) -> list[Row]:
    query = "SELECT * FROM runs WHERE thread_id = %s"
    params: list[Any] = [thread_id]
    if status:
        query += " AND status = %s"
        params.append(status)
    query += " ORDER BY created_at DESC, run_id LIMIT %s OFFSET %s"
    async with pool.connection() as conn:
        cur = await conn.execute(query, [*params, limit, offset])
        return [dict(r) for r in await cur.fetchall()]


async def runs_by_id(pool: Pool, run_ids: Sequence[str]) -> dict[str, Row]:
    if not run_ids:
        return {}
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM runs WHERE run_id = ANY(%s::uuid[])", (list(run_ids),))
        return {str(r["run_id"]): dict(r) for r in await cur.fetchall()}


async def active_runs(pool: Pool) -> list[Row]:
    """Runs recorded as pending or running (by any process)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM runs WHERE status IN ('pending', 'running')")
        return [dict(r) for r in await cur.fetchall()]


async def delete_run(pool: Pool, thread_id: str, run_id: str) -> None:
    """Delete an ended run's record (an executing run is a 409)."""
    row = await get_run(pool, thread_id, run_id)
    if row["status"] in ("pending", "running"):
        raise ApiError(409, "conflict", f"run {run_id} is still {row['status']}; cancel it first")
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM runs WHERE run_id = %s", (run_id,))
