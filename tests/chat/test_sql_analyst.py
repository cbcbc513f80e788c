"""The chat's SQL analyst on the seeded data: one SELECT over the analyst views, read-only, as a role that can read
nothing else, under a timeout and a row cap; anything else is refused with the reason and writes nothing."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tools.deps import ToolDeps
from tools.sql_analyst import MAX_ROWS, SqlRefused, run_query

LEDGERS = ("refunds", "store_credits", "notifications", "tickets", "purchase_orders", "promotions", "audit_log")


async def test_a_select_over_the_views_equals_sql(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    result = await run_query("SELECT store_id, sum(units) AS units FROM analyst_sales GROUP BY store_id "
                             "ORDER BY store_id;")  # fmt: skip
    wanted = db.execute("SELECT store_id, sum(units) AS u FROM sales_daily GROUP BY store_id ORDER BY store_id")
    assert result.columns == ["store_id", "units"] and result.rows == [[r["store_id"], r["u"]] for r in wanted]
    assert not result.truncated and not result.sql.endswith(";")
    many = await run_query("SELECT * FROM analyst_sales")
    assert len(many.rows) == MAX_ROWS and many.truncated
    orders = await run_query("SELECT * FROM analyst_orders LIMIT 1")
    assert not {"name", "email", "gender"} & set(orders.columns)


@pytest.mark.parametrize(
    ("query", "reason"),
    [("DELETE FROM refunds", "only a SELECT"), ("SELECT 1; DELETE FROM refunds", "one statement"),
     ("  ", "empty"), ("SELECT name, email FROM customers", "permission denied"),
     ("SELECT * FROM orders", "permission denied"),
     ("WITH gone AS (DELETE FROM refunds RETURNING *) SELECT count(*) FROM gone", "read-only"),
     ("SELECT count(*) FROM analyst_sales a, analyst_sales b, analyst_sales c", "statement timeout"),
     ("SELECT set_config('role', 'postgres', false)", "set_config"),
     ("SELECT query_to_xml('select email from customers', true, true, '')", "query_to_xml"),
     ('SELECT pg_catalog."set_config"(\'role\', \'postgres\', true)', "quoted name"),
     ("SELECT pg_sleep(5)", "pg_sleep")],
)  # fmt: skip
async def test_anything_but_a_read_of_the_views_is_refused(
    deps: ToolDeps, db: psycopg.Connection[Any], query: str, reason: str
) -> None:
    before = {t: db.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in LEDGERS}
    with pytest.raises(SqlRefused, match=reason):
        await run_query(query)
    assert {t: db.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in LEDGERS} == before
