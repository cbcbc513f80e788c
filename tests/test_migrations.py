"""Migrations: up from empty, idempotent, concurrent-safe, and guarded against edited history."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from server.db import connect
from server.migrate import MigrationError, current_version, discover, migrate

DOMAIN_TABLES = {
    "stores", "products", "inventory", "sales_daily", "customers", "orders", "pricing_rules", "batch_jobs",
    "predictions", "deviations", "refunds", "store_credits", "notifications", "tickets", "shipment_changes",
    "purchase_orders", "promotions", "feedback", "dataset_info",
}  # fmt: skip
CHECKPOINT_TABLES = {"checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"}


def _tables(url: str) -> set[str]:
    with connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r["tablename"] for r in rows}


def test_up_from_empty_then_idempotent(empty_database_url: str) -> None:
    assert _tables(empty_database_url) == set()
    with connect(empty_database_url) as conn:
        assert current_version(conn) is None
        applied = migrate(conn)
        assert applied == [m.version for m in discover()]
        assert migrate(conn) == []
        assert current_version(conn) == applied[-1]
    assert DOMAIN_TABLES | CHECKPOINT_TABLES | {"schema_migrations"} <= _tables(empty_database_url)


def test_concurrent_migrators_apply_once(new_database: Any) -> None:
    url = new_database("concurrent")
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with connect(url) as conn:
                results.append(migrate(conn))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results, key=len) == [[], [], [], [m.version for m in discover()]]


def test_edited_migration_is_refused(new_database: Any, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_first.sql").write_text("CREATE TABLE IF NOT EXISTS t_edit (id int);")
    with connect(new_database("edited")) as conn:
        assert migrate(conn, folder) == [1]
        (folder / "0001_first.sql").write_text("CREATE TABLE IF NOT EXISTS t_edit (id bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrate(conn, folder)


def test_misnamed_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_snake_case\.sql"):
        discover(tmp_path)
