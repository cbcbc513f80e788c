"""Where the database is and how to reach it: embedded cluster or ``DATABASE_URL``, plus the shared pool.

Both paths end in one libpq URL, and everything after that (migrations, pool, checkpointer, seeding) runs
the same code whether the server is embedded or real.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from server.embedded_pg import EmbeddedPostgres
from server.settings import Settings

log = logging.getLogger(__name__)

# The checkpointer needs autocommit, no server-side prepares (poolers) and dict rows; the app shares them.
CONNECTION_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


class Database:
    """The service's database: starts (and later stops) the embedded cluster when no URL is configured."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedPostgres | None = None
        self.url = settings.database_url or ""

    @property
    def kind(self) -> str:
        return "embedded" if self.settings.database_url is None else "external"

    def start(self) -> str:
        if self.settings.database_url is None:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.embedded = EmbeddedPostgres(self.settings.pg_dir)
            self.url = self.embedded.start()
        return self.url

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


@contextlib.contextmanager
def running_database(settings: Settings) -> Iterator[str]:
    """Yield the database URL, with the embedded cluster up for the duration if one is used."""
    database = Database(settings)
    try:
        yield database.start()
    finally:
        database.stop()


def connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    """A synchronous autocommit connection with dict rows (CLI commands, migrations, seeding)."""
    return psycopg.connect(url, **CONNECTION_KWARGS)


async def open_pool(url: str, settings: Settings) -> AsyncConnectionPool[Any]:
    """Open the pool shared by the API and the LangGraph checkpointer."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        kwargs=CONNECTION_KWARGS,
        open=False,
        name="rimas",
    )
    await pool.open(wait=True, timeout=30)
    return pool
