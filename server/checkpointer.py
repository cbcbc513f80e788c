"""The service's checkpointer: LangGraph's ``AsyncPostgresSaver`` over the shared connection pool.

The stock saver serialises every checkpoint operation behind one instance-wide lock, which a single shared
connection needs. Over a pool each operation checks out its own connection, so the lock only caps
concurrency (``bench/bench_runs.py`` measures both); this saver drops it.

It writes a checkpoint and its channel blobs in one statement, and a task's writes in one statement (the
stock saver sends one statement per row through a pipeline, after a hop to a thread to serialise them): a
run's checkpoints are a third of the server's CPU per run (``bench/bench_runs.py --profile``), and most of
that was the pipeline's and the thread hop's overhead. The rows written are the stock saver's, so its
readers (``aget_tuple``, ``alist``) and migrations are unchanged.

It also drops the checkpoints of runs being rolled back (``discarded``): LangGraph saves checkpoints in the
background (durability ``async``), so a cancelled run's last checkpoint can land after the rollback deleted
the others, and would bring the removed state back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

_CHECKPOINT = (
    "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) "
    "DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata"
)
_BLOBS = (
    "WITH blobs AS (INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob) "
    "VALUES {rows} ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING) "
)
_WRITES = (
    "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, "
    "blob) VALUES {rows} ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO "
)
_REPLACE = "UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob"


def _rows(count: int, width: int) -> sql.Composable:
    return sql.SQL(", ").join([sql.SQL("({})").format(sql.SQL(", ").join([sql.Placeholder()] * width))] * count)


@functools.cache
def _put_sql(blobs: int) -> str:
    """One checkpoint row, and ``blobs`` channel blobs written by the same statement."""
    if not blobs:
        return _CHECKPOINT
    return sql.SQL(_BLOBS + _CHECKPOINT).format(rows=_rows(blobs, 6)).as_string()


@functools.cache
def _writes_sql(count: int, upsert: bool) -> str:
    """``count`` write rows; ``upsert`` replaces a write of the same index, otherwise the first one stays."""
    return sql.SQL(_WRITES + (_REPLACE if upsert else "NOTHING")).format(rows=_rows(count, 9)).as_string()


class PooledPostgresSaver(AsyncPostgresSaver):
    """``AsyncPostgresSaver`` for a connection pool, without the instance-wide lock."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__(pool)
        self.pool = pool
        self.lock = contextlib.nullcontext()  # type: ignore[assignment]  # any async context manager will do
        self.discarded: set[str] = set()
        self._saving: dict[str, int] = {}  # run id -> checkpoint saves in progress
        self._saved = asyncio.Condition()

    async def aput(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:  # fmt: skip
        run_id = str(metadata.get("run_id") or (config.get("metadata") or {}).get("run_id"))
        if run_id in self.discarded:  # a late save of a rolled-back run
            return config
        self._saving[run_id] = self._saving.get(run_id, 0) + 1
        try:
            return await self._put(config, checkpoint, metadata, new_versions)
        finally:
            self._saving[run_id] -= 1
            if not self._saving[run_id]:
                del self._saving[run_id]
                async with self._saved:
                    self._saved.notify_all()

    async def _put(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:  # fmt: skip
        """The stock ``aput``'s rows in one statement: primitive channel values stay inline in the checkpoint,
        the others (and delta snapshots) go to ``checkpoint_blobs`` for the channels this step changed."""
        configurable = config["configurable"]
        thread_id, ns = configurable["thread_id"], configurable["checkpoint_ns"]
        inline = dict(checkpoint["channel_values"])
        blob_values: dict[str, Any] = {}
        for name, value in checkpoint["channel_values"].items():
            if isinstance(value, _DeltaSnapshot):
                blob_values[name] = value
                inline[name] = True
            elif not (value is None or isinstance(value, (str, int, float, bool))):
                blob_values[name] = inline.pop(name)
        changed = {name: version for name, version in new_versions.items() if name in blob_values}
        blobs = self._dump_blobs(thread_id, ns, blob_values, changed)
        params: list[Any] = [value for row in blobs for value in row]
        params += [thread_id, ns, checkpoint["id"], configurable.get("checkpoint_id"),
                   Jsonb({**checkpoint, "channel_values": inline}),
                   Jsonb(get_serializable_checkpoint_metadata(config, metadata))]  # fmt: skip
        async with self.pool.connection() as conn:
            await conn.execute(_put_sql(len(blobs)), params)
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """The stock ``aput_writes``'s rows in one statement (special channels replace earlier writes of the
        same index, the others keep the first)."""
        configurable = config["configurable"]
        rows = self._dump_writes(configurable["thread_id"], configurable["checkpoint_ns"],
                                 configurable["checkpoint_id"], task_id, task_path, writes)  # fmt: skip
        if not rows:
            return
        upsert = all(w[0] in WRITES_IDX_MAP for w in writes)
        if upsert:  # one row per index, the last one, as one upsert after another would leave
            rows = list({row[5]: row for row in rows}.values())
        async with self.pool.connection() as conn:
            await conn.execute(_writes_sql(len(rows), upsert), [value for row in rows for value in row])

    async def discard(self, run_id: str, seconds: float = 10.0) -> None:
        """Drop the run's checkpoint saves from now on, and wait (up to ``seconds``) for those in progress."""
        self.discarded.add(run_id)
        asyncio.get_running_loop().call_later(300, self.discarded.discard, run_id)
        with contextlib.suppress(TimeoutError):
            async with self._saved:
                await asyncio.wait_for(self._saved.wait_for(lambda: run_id not in self._saving), seconds)
