"""The long-lived resources of a running service, opened and closed by the app's lifespan.

Start-up order: database (embedded or external) -> migrations + checkpointer tables -> demo seed when the
database is empty -> connection pool -> checkpointer -> Qdrant. Shutdown releases them in reverse order,
so a SIGTERM'd server stops its embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg_pool import AsyncConnectionPool
from qdrant_client import QdrantClient

from server.db import Database, connect, open_pool
from server.migrate import migrate
from server.qdrant import open_qdrant
from server.seed import database_is_empty, seed_database
from server.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Resources:
    """Handles shared by every request; one instance per running app."""

    settings: Settings
    database: Database
    pool: AsyncConnectionPool[Any]
    checkpointer: AsyncPostgresSaver
    qdrant: QdrantClient
    started_at: float = field(default_factory=time.time)

    @classmethod
    async def open(cls, settings: Settings) -> Resources:
        started = time.perf_counter()
        database = Database(settings)
        url = await asyncio.to_thread(database.start)
        try:
            await asyncio.to_thread(_prepare_database, url, settings)
            pool = await open_pool(url, settings)
        except BaseException:
            await asyncio.to_thread(database.stop)
            raise
        try:
            checkpointer = AsyncPostgresSaver(pool)
            qdrant = await asyncio.to_thread(open_qdrant, settings)
        except BaseException:
            await pool.close()
            await asyncio.to_thread(database.stop)
            raise
        log.info(
            "resources ready",
            extra={"database": database.kind, "seconds": round(time.perf_counter() - started, 2)},
        )
        return cls(settings, database, pool, checkpointer, qdrant)

    async def close(self) -> None:
        try:
            await asyncio.to_thread(self.qdrant.close)
        finally:
            try:
                await self.pool.close()
            finally:
                await asyncio.to_thread(self.database.stop)
        log.info("resources closed")


def _prepare_database(url: str, settings: Settings) -> None:
    with connect(url) as conn:
        migrate(conn)
        if settings.seed_on_start and database_is_empty(conn):
            log.info("database is empty: seeding demo data", extra={"scale": settings.seed_scale})
            seed_database(conn, seed=settings.seed, scale=settings.seed_scale)
