"""Load the synthetic retail dataset (``ml.synth``) into PostgreSQL with COPY.

Seeding replaces the demo data in one transaction: the seeded tables are truncated (with the rows of the
ledgers that reference them), bulk-loaded with their foreign keys dropped, and the keys re-created, which
re-validates them; ``dataset_info`` records the seed, scale and as-of date. The same seed, scale and as-of
date give identical rows, which :func:`table_checksums` verifies.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ml import synth

log = logging.getLogger(__name__)

GENERATOR = synth.GENERATOR_NAME
_CHUNK_ROWS = 200_000


def database_is_empty(conn: psycopg.Connection[Any]) -> bool:
    """True when no dataset has been seeded (no stores)."""
    row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM stores) AS empty").fetchone()
    return bool(_first(row))


def _first(row: Any) -> Any:
    assert row is not None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def _copy_frame(cur: psycopg.Cursor[Any], table: str, frame: pd.DataFrame) -> None:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(sql.Identifier(table), columns)
    with cur.copy(statement) as copy:
        for start in range(0, len(frame), _CHUNK_ROWS):
            buffer = io.StringIO()
            frame.iloc[start : start + _CHUNK_ROWS].to_csv(buffer, header=False, index=False)
            copy.write(buffer.getvalue())


def _drop_foreign_keys(cur: psycopg.Cursor[Any], tables: list[str]) -> list[tuple[str, str, str]]:
    """Drop the seeded tables' foreign keys for the load (row-by-row checks cost more than the load itself)."""
    cur.execute(
        """SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
           FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(%s::regclass[]) ORDER BY conname""",
        (tables,),
    )
    found = [(r["tbl"], r["conname"], r["def"]) for r in cur.fetchall()]
    for table, name, _ in found:
        cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(name)))
    return found


def _restore_foreign_keys(cur: psycopg.Cursor[Any], foreign_keys: list[tuple[str, str, str]]) -> None:
    """Re-create the foreign keys; PostgreSQL validates each with one join, so bad rows still abort the seed."""
    for table, name, definition in foreign_keys:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(sql.Identifier(table), sql.Identifier(name))
            + sql.SQL(definition)  # catalog text from pg_get_constraintdef
        )


def seed_database(
    conn: psycopg.Connection[Any],
    *,
    seed: int = 7,
    scale: str = "demo",
    as_of: dt.date | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Generate and load the dataset; returns row counts per table."""
    as_of = as_of or synth.DEFAULT_AS_OF
    started = time.perf_counter()
    frames = synth.generate(seed=seed, scale=scale, as_of=as_of)
    generated = time.perf_counter()
    order = synth.table_order()
    counts: dict[str, int] = {}
    with conn.transaction(), conn.cursor() as cur:
        tables = sql.SQL(", ").join(sql.Identifier(t) for t in [*order, "dataset_info"])
        cur.execute(sql.SQL("TRUNCATE {} CASCADE").format(tables))
        foreign_keys = _drop_foreign_keys(cur, order)
        for table in order:
            _copy_frame(cur, table, frames[table])
            counts[table] = len(frames[table])
            if progress is not None:
                progress(table, counts[table])
        _restore_foreign_keys(cur, foreign_keys)
        cur.execute(
            "INSERT INTO dataset_info (seed, scale, as_of, generator, row_counts) VALUES (%s, %s, %s, %s, %s)",
            (seed, scale, as_of, GENERATOR, Jsonb(counts)),
        )
    with conn.cursor() as cur:
        for table in order:
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    log.info(
        "database seeded",
        extra={
            "seed": seed,
            "scale": scale,
            "as_of": as_of.isoformat(),
            "rows": sum(counts.values()),
            "generate_s": round(generated - started, 2),
            "total_s": round(time.perf_counter() - started, 2),
        },
    )
    return counts


def table_checksums(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """md5 over every seeded table's generated columns, rows in a canonical order."""
    sums: dict[str, str] = {}
    for table in synth.table_order():
        columns = [
            r["column_name"] if isinstance(r, dict) else r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND column_name NOT IN ('updated_at', 'created_at', 'promotion_id') ORDER BY ordinal_position",
                (table,),
            ).fetchall()
        ]
        row_expr = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns))
        query = sql.SQL("SELECT md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) FROM (SELECT {} AS r FROM {}) t")
        sums[table] = str(_first(conn.execute(query.format(row_expr, sql.Identifier(table))).fetchone()))
    return sums
