"""Ordered, idempotent schema migrations (``server/migrations/NNNN_name.sql``) plus the checkpointer's.

Each file is applied once, in its own transaction, under a session advisory lock so concurrent starters do not
race; its checksum is recorded and a file edited after being applied is refused (write a new migration).
LangGraph's checkpoint tables are created by ``PostgresSaver.setup()``, itself idempotent.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x5249_4D41  # "RIMA"


class MigrationError(RuntimeError):
    """A migration file is malformed, out of order, or was changed after being applied."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory``, ordered by version; names must be ``NNNN_snake_case.sql``."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name!r} must be named NNNN_snake_case.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory.name}: {versions}")
    return found


def applied_versions(conn: psycopg.Connection[Any]) -> dict[int, str]:
    rows = conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version").fetchall()
    return {_row(r)[0]: _row(r)[1] for r in rows}


def _row(row: Any) -> tuple[Any, ...]:
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def migrate(conn: psycopg.Connection[Any], directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply pending domain migrations and the checkpointer's; return the versions applied now."""
    migrations = discover(directory)
    applied_now: list[int] = []
    _acquire_lock(conn)
    try:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = applied_versions(conn)
        for migration in migrations:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode(), prepare=False)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            applied_now.append(migration.version)
            log.info("migration applied", extra={"version": migration.version, "migration": migration.name})
        PostgresSaver(conn).setup()
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def _acquire_lock(conn: psycopg.Connection[Any], timeout_s: float = 120.0) -> None:
    """Take the migration lock by polling: a waiter must not sit in a statement, because the checkpointer's
    ``CREATE INDEX CONCURRENTLY`` waits for every open transaction and would deadlock with it."""
    deadline = time.monotonic() + timeout_s
    while not _row(conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone())[0]:
        if time.monotonic() > deadline:
            raise MigrationError(f"another process held the migration lock for over {timeout_s:.0f}s")
        time.sleep(0.05)


def current_version(conn: psycopg.Connection[Any]) -> int | None:
    """Highest applied domain migration, or None on an empty database."""
    exists = _row(conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone())[0]
    if not exists:
        return None
    return _row(conn.execute("SELECT max(version) FROM schema_migrations").fetchone())[0]
