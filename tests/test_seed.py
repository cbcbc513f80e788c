"""Seeding: deterministic rows, recorded provenance, --if-empty, and data that matches the generator."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ml import synth
from server.cli import main
from server.db import connect
from server.migrate import migrate
from server.seed import database_is_empty, seed_database, table_checksums


@pytest.fixture(scope="module")
def seeded_url(database_url: str) -> str:
    with connect(database_url) as conn:
        seed_database(conn, seed=7, scale="small")
    return database_url


def test_same_seed_same_rows_other_seed_other_rows(seeded_url: str, new_database: Any) -> None:
    other = new_database("reseed")
    with connect(seeded_url) as a, connect(other) as b:
        migrate(b)
        first = table_checksums(a)
        seed_database(b, seed=7, scale="small")
        assert table_checksums(b) == first
        seed_database(b, seed=8, scale="small")  # reseeding replaces, never appends
        changed = table_checksums(b)
    assert changed["sales_daily"] != first["sales_daily"]
    assert changed["orders"] != first["orders"]
    assert set(first) == set(synth.table_order())


def test_row_counts_and_provenance(seeded_url: str) -> None:
    frames = synth.generate(seed=7, scale="small")
    with connect(seeded_url) as conn:
        info = conn.execute("SELECT seed, scale, as_of, row_counts FROM dataset_info").fetchone()
        for table, frame in frames.items():
            count = conn.execute(psycopg.sql.SQL("SELECT count(*) AS n FROM {}").format(psycopg.sql.Identifier(table)))
            assert count.fetchone()["n"] == len(frame), table
    assert info["seed"] == 7 and info["scale"] == "small" and info["as_of"] == synth.DEFAULT_AS_OF
    assert info["row_counts"] == {t: len(f) for t, f in frames.items()}


def test_loaded_values_match_the_generator(seeded_url: str) -> None:
    """Spot-check that COPY kept types, NULLs and money exactly (answers are checked against SQL)."""
    orders = synth.generate(seed=7, scale="small")["orders"].set_index("order_id")
    with connect(seeded_url) as conn:
        rows = conn.execute(
            "SELECT order_id, order_value, delivery_date, is_late, discount_offered FROM orders ORDER BY order_id"
        ).fetchall()
    assert len(rows) == len(orders)
    for row in rows[:200]:
        expected = orders.loc[row["order_id"]]
        assert float(row["order_value"]) == pytest.approx(float(expected["order_value"]), abs=0.005)
        assert row["discount_offered"] == int(expected["discount_offered"])
        assert (row["delivery_date"] is None) == bool(expected.isna()["delivery_date"])
        assert (row["is_late"] is None) == bool(expected.isna()["is_late"])


def test_cli_seed_if_empty(empty_database_url: str, monkeypatch: pytest.MonkeyPatch, settings_factory: Any,
                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    assert main(["seed", "--scale", "small", "--if-empty"]) == 0
    assert "seeded" in capsys.readouterr().out
    assert main(["seed", "--scale", "small", "--if-empty", "--seed", "99"]) == 0
    assert "nothing seeded" in capsys.readouterr().out
    with connect(empty_database_url) as conn:
        assert not database_is_empty(conn)
        assert conn.execute("SELECT seed FROM dataset_info").fetchone()["seed"] == 7


def test_cli_rejects_bad_scale(settings_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["seed", "--scale", "huge"])
    assert exc.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_bad_reference_aborts_the_seed_and_keeps_the_old_data(
    seeded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_generate = synth.generate

    def broken(**kwargs: Any) -> dict[str, Any]:
        frames = real_generate(**kwargs)
        frames["orders"].loc[0, "customer_id"] = 999_999  # no such customer
        return frames

    monkeypatch.setattr(synth, "generate", broken)
    with connect(seeded_url) as conn:
        before = table_checksums(conn)
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="customer"):
            seed_database(conn, seed=7, scale="small")
        assert table_checksums(conn) == before
        fks = conn.execute("SELECT count(*) AS n FROM pg_constraint WHERE contype = 'f'").fetchone()["n"]
    assert fks >= 10  # the constraints are all still there
