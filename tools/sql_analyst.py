"""The chat's SQL analyst: one read-only SELECT over the documented views, for questions no fixed tool answers.

:func:`run_query` takes one ``SELECT`` (or ``WITH ... SELECT``) and runs it

* in a **read-only transaction** (``SET TRANSACTION READ ONLY``): nothing can be written, whatever the text says;
* as the role ``rimas_analyst`` (migration 0012), which may read the :data:`VIEWS` and nothing else, so customer
  names, emails and the other tables are out of reach;
* under a **statement timeout** (:data:`TIMEOUT_MS`), returning at most :data:`MAX_ROWS` rows (``truncated`` says
  when there were more);
* calling only the functions of :data:`ALLOWED_CALLS`: the session user may be a superuser, so a query must not be
  able to change its role or settings (``set_config``) or run SQL of its own (``query_to_xml``).

The query is returned with the rows, so the answer can show it. A query that is not one SELECT, or that the
database refuses, raises :class:`SqlRefused` with the database's reason (never a stack trace).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg.rows import tuple_row

from tools.deps import current

ROLE: Final = "rimas_analyst"
MAX_ROWS: Final = 200
TIMEOUT_MS: Final = 2000
MAX_QUERY_CHARS: Final = 4000
VIEWS: Final[dict[str, str]] = {
    "analyst_sales": "one row per day, store and sku: date, store_id, store_name, city, region, sku, product_name, "
                     "category, units, price (the day's, after discount), discount, revenue (units x price)",
    "analyst_inventory": "stock per store and sku: store_id, sku, product_name, category, on_hand, on_order, "
                         "lead_time_days",
    "analyst_products": "sku, name, category, unit_cost, unit_price, importance",
    "analyst_stores": "store_id, name, city, region, size_sqft, opened_on",
    "analyst_orders": "order_id, customer_id, store_id, sku, quantity, order_date, promised_delivery_date, ship_date, "
                      "delivery_date, warehouse_block, mode_of_shipment, carrier_name, product_importance, "
                      "cost_of_product, discount_offered, weight_in_gms, order_value, payment_status, order_status, "
                      "is_late",
}  # fmt: skip
"""The views the analyst may read, with their columns (what the model is told)."""

_SELECT: Final = re.compile(r"^\s*(?:select|with)\b", re.IGNORECASE)
_CALL: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_$]*)\s*\(")
_QUOTED_CALL: Final = re.compile(r"\"\s*\(")
ALLOWED_CALLS: Final = frozenset(
    re.split(
        r"\s+",
        # aggregates, window functions and scalar functions a sales question needs
        "sum avg count min max stddev stddev_samp stddev_pop variance var_samp percentile_cont percentile_disc mode "
        "string_agg array_agg bool_and bool_or every corr regr_slope rank dense_rank row_number ntile lag lead "
        "first_value last_value cume_dist percent_rank round trunc floor ceil ceiling abs sign sqrt power ln log exp "
        "greatest least coalesce nullif date_trunc date_part extract to_char age make_date lower upper initcap length "
        "substr substring concat replace trim split_part left right position "
        # SQL keywords that take parentheses
        "in as over filter within exists any all values not and or select from where on using cast case when then "
        "else end distinct lateral join group by order partition having interval",
    )
)
"""Everything that may stand before "(" in a query: the functions a sales question needs and SQL's own keywords.
A function outside the list (``set_config``, ``query_to_xml``, ``pg_sleep``, ``dblink``...) is refused before
the query is run, so a query cannot change the session or run SQL of its own."""


class SqlRefused(ValueError):
    """The query was not run, or the database refused it; the message says why."""


@dataclass(frozen=True)
class SqlResult:
    sql: str
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def check_query(query: str) -> str:
    """The query without a trailing semicolon; :class:`SqlRefused` unless it is one SELECT of bounded size."""
    text = query.strip().rstrip(";").strip()
    if not text:
        raise SqlRefused("the query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise SqlRefused(f"the query is longer than {MAX_QUERY_CHARS} characters")
    if ";" in text:
        raise SqlRefused("one statement only: the query holds a ';'")
    if not _SELECT.match(text):
        raise SqlRefused("only a SELECT (or WITH ... SELECT) is run")
    if _QUOTED_CALL.search(text):
        raise SqlRefused("a call of a quoted name is not allowed")
    calls = sorted({m.group(1).lower() for m in _CALL.finditer(text)} - ALLOWED_CALLS)
    if calls:
        raise SqlRefused(f"function(s) not allowed: {', '.join(calls)}; allowed: aggregates, window and date, "
                         "number and text functions")  # fmt: skip
    return text


async def run_query(query: str) -> SqlResult:
    """Run one read-only SELECT as the analyst role (see the module docstring)."""
    text = check_query(query)
    try:
        async with current().pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute("SET TRANSACTION READ ONLY")
            await cur.execute(f"SET LOCAL statement_timeout = {TIMEOUT_MS}")
            await cur.execute(f"SET LOCAL ROLE {ROLE}")
            await cur.execute(text.encode(), prepare=False)  # the model's SQL: run read-only, as the role
            columns = [c.name for c in cur.description or []]
            fetched = await cur.fetchmany(MAX_ROWS + 1)
    except psycopg.Error as exc:
        reason = (exc.diag.message_primary or str(exc)).strip()
        raise SqlRefused(f"the database refused the query: {reason}") from None
    rows = [[_plain(v) for v in row] for row in fetched[:MAX_ROWS]]
    return SqlResult(text, columns, rows, len(fetched) > MAX_ROWS)
