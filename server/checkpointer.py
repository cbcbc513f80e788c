"""The service's checkpointer: LangGraph's ``AsyncPostgresSaver`` over the shared connection pool.

The stock saver serialises every checkpoint operation behind one instance-wide lock, which a single shared
connection needs. Over a pool each operation checks out its own connection, so the lock only caps
concurrency (``bench/bench_runs.py`` measures both); this saver drops it and is otherwise unchanged.
"""

from __future__ import annotations

import contextlib
from typing import Any

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg_pool import AsyncConnectionPool


class PooledPostgresSaver(AsyncPostgresSaver):
    """``AsyncPostgresSaver`` for a connection pool, without the instance-wide lock."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__(pool)
        self.lock = contextlib.nullcontext()  # type: ignore[assignment]  # any async context manager will do
