"""The service's checkpointer: LangGraph's ``AsyncPostgresSaver`` over the shared connection pool.

The stock saver serialises every checkpoint operation behind one instance-wide lock, which a single shared
connection needs. Over a pool each operation checks out its own connection, so the lock only caps
concurrency (``bench/bench_runs.py`` measures both); this saver drops it.

It also drops the checkpoints of runs being rolled back (``discarded``): LangGraph saves checkpoints in the
background (durability ``async``), so a cancelled run's last checkpoint can land after the rollback deleted
the others, and would bring the removed state back.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg_pool import AsyncConnectionPool


class PooledPostgresSaver(AsyncPostgresSaver):
    """``AsyncPostgresSaver`` for a connection pool, without the instance-wide lock."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__(pool)
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
            return await super().aput(config, checkpoint, metadata, new_versions)
        finally:
            self._saving[run_id] -= 1
            if not self._saving[run_id]:
                del self._saving[run_id]
                async with self._saved:
                    self._saved.notify_all()

    async def discard(self, run_id: str, seconds: float = 10.0) -> None:
        """Drop the run's checkpoint saves from now on, and wait (up to ``seconds``) for those in progress."""
        self.discarded.add(run_id)
        asyncio.get_running_loop().call_later(300, self.discarded.discard, run_id)
        with contextlib.suppress(TimeoutError):
            async with self._saved:
                await asyncio.wait_for(self._saved.wait_for(lambda: run_id not in self._saving), seconds)
