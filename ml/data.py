"""Loading training and scoring data: our Postgres tables and the public CSV formats.

Database loaders take a psycopg 3 *sync* connection and run plain parameterised SQL (no server code).
CSV loaders accept the public files exactly as published:

* the "E-Commerce Shipping" data (``ID,Warehouse_block,...,Reached.on.Time_Y.N``; names matched
  case-insensitively, a UTF-8 BOM tolerated; ``Reached.on.Time_Y.N = 1`` means the order was LATE);
* daily demand as ``date,store,item,sales``.

Both kinds of loader return frames with canonical column names: shipping rows carry ``order_id``, the ten
features and ``is_late`` (nullable boolean: unknown when NULL); sales rows are ``date, store, item, sales``.
Shipping feature values are validated by the delay feature pipeline (the one place that does it); the
loaders only check structure and labels. Bad rows are skipped and reported with their line numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from psycopg.rows import tuple_row

from ml.csvio import LINE, read_csv_rows, resolve_columns
from ml.delay.features import canonical_columns
from ml.demand.panel import DISCOUNT_ALIASES, SALES_ALIASES, SALES_COLUMNS
from ml.errors import InputError

log = logging.getLogger(__name__)


_ORDERS_SQL = """
SELECT order_id, order_date, warehouse_block, mode_of_shipment, customer_care_calls, customer_rating,
       cost_of_product::float8 AS cost_of_product, prior_purchases, product_importance, gender,
       discount_offered, weight_in_gms, is_late
FROM orders
WHERE (%(labelled_only)s = false OR is_late IS NOT NULL)
  AND (%(since)s::date IS NULL OR order_date >= %(since)s::date)
ORDER BY order_date, order_id
"""

_SALES_SQL = """
SELECT date, store_id, sku, units, discount::float8 AS discount
FROM sales_daily
WHERE (%(since)s::date IS NULL OR date >= %(since)s::date)
ORDER BY store_id, sku, date
"""


@dataclass
class Loaded:
    """A loaded frame plus the rows that could not be used (one :class:`InputError` each)."""

    frame: pd.DataFrame
    errors: list[InputError] = field(default_factory=list)
    id_column: str | None = None


# -- database -----------------------------------------------------------------------------------------------


def load_orders_db(conn: Any, *, labelled_only: bool = False, since: date | None = None) -> pd.DataFrame:
    """Orders with the ten delay features and ``is_late`` (NULL = not yet known) from the ``orders`` table."""
    with conn.cursor(row_factory=tuple_row) as cur:  # positional rows, whatever the connection default
        cur.execute(_ORDERS_SQL, {"labelled_only": labelled_only, "since": since})
        rows = cur.fetchall()
        names = [d.name for d in cur.description]
    frame = pd.DataFrame.from_records(rows, columns=names)
    frame["order_id"] = frame["order_id"].astype(str)
    frame["order_date"] = pd.to_datetime(frame["order_date"])
    for name in ("customer_care_calls", "customer_rating", "prior_purchases", "discount_offered", "weight_in_gms"):
        frame[name] = frame[name].astype("int64")
    frame["cost_of_product"] = frame["cost_of_product"].astype("float64")
    frame["is_late"] = frame["is_late"].astype("boolean")
    return frame


def load_sales_db(conn: Any, *, since: date | None = None) -> pd.DataFrame:
    """Daily unit sales per (store, sku) from ``sales_daily`` as ``date, store, item, sales``."""
    with conn.cursor(row_factory=tuple_row) as cur:  # positional rows, whatever the connection default
        cur.execute(_SALES_SQL, {"since": since})
        rows = cur.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=[*SALES_COLUMNS, "discount"])
    return _typed_sales(frame)


# -- shipping CSV -------------------------------------------------------------------------------------------


def read_shipping_csv(path: str | Path, *, require_label: bool = True) -> Loaded:
    """Read a shipping CSV (public or our column names); rows with a bad label are reported, not kept.

    A blank label means the outcome is not known yet (``is_late`` NA; training skips such rows). Feature
    values stay as written; the delay feature pipeline validates and encodes them.
    """
    rows = read_csv_rows(path)
    mapping = resolve_columns(
        rows.header,
        {"order_id": ("ID", "order_id"), "is_late": ("Reached.on.Time_Y.N",)},
        required=["is_late"] if require_label else [],
    )
    frame = canonical_columns(rows.frame, require_label=require_label)
    errors = list(rows.errors)
    if not require_label:
        frame = frame.drop(columns=["is_late"], errors="ignore")
    if "is_late" in frame.columns:
        labels, bad = parse_late_label(frame["is_late"])  # a blank label means "not known yet": kept as NA
        for line, raw in zip(frame.loc[bad, LINE], frame.loc[bad, "is_late"], strict=True):
            errors.append(InputError(f"label {raw!r} is not 0/1", field=mapping["is_late"],
                                     allowed=["0", "1"], row=int(line)))
        frame = frame.loc[~bad].copy()
        frame["is_late"] = labels[~bad]
    if "order_id" in frame.columns:
        frame["order_id"] = frame["order_id"].astype(str).str.strip()
    _require_rows(frame, errors, path)
    return Loaded(frame=frame.reset_index(drop=True), errors=errors, id_column=mapping.get("order_id"))


def load_shipping_csv(path: str | Path, *, require_label: bool = True) -> pd.DataFrame:
    """Shipping rows with canonical columns; malformed rows are skipped with a logged warning."""
    loaded = read_shipping_csv(path, require_label=require_label)
    for err in loaded.errors:
        log.warning("skipped %s", err)
    return loaded.frame


def parse_late_label(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """``is_late`` from 0/1, true/false or booleans; returns (nullable booleans, mask of unparseable)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        out = values.astype("boolean")
        return out, np.zeros(len(values), dtype=bool)
    text = values.astype("string").str.strip().str.casefold()
    mapping = {"1": True, "0": False, "1.0": True, "0.0": False, "true": True, "false": False}
    parsed = text.map(mapping)
    blank = text.isna() | (text == "")
    bad = (parsed.isna() & ~blank).to_numpy(dtype=bool)
    return parsed.astype("boolean"), bad


# -- sales CSV ----------------------------------------------------------------------------------------------


def read_sales_csv(path: str | Path) -> Loaded:
    """Read ``date,store,item,sales`` (or ``date,store_id,sku,units``); bad rows reported by line."""
    rows = read_csv_rows(path)
    mapping = resolve_columns(rows.header, SALES_ALIASES, required=SALES_COLUMNS)
    raw = rows.frame
    n = len(raw)
    problems: list[tuple[np.ndarray, str, str]] = []
    dates = pd.to_datetime(raw[mapping["date"]].astype("string").str.strip(), format="%Y-%m-%d", errors="coerce")
    problems.append((dates.isna().to_numpy(), "date", "is not a date (expected YYYY-MM-DD)"))
    ids: dict[str, pd.Series] = {}
    for key in ("store", "item"):
        num = pd.to_numeric(raw[mapping[key]].astype("string").str.strip(), errors="coerce")
        ok = num.notna() & (num == num.round())
        problems.append((~ok.to_numpy(dtype=bool), key, "is not an integer id"))
        ids[key] = num
    sales = pd.to_numeric(raw[mapping["sales"]].astype("string").str.strip(), errors="coerce")
    problems.append((~(sales.notna() & (sales >= 0)).to_numpy(dtype=bool), "sales", "is not a number >= 0"))
    discount = None
    if "discount" in (optional := resolve_columns(rows.header, DISCOUNT_ALIASES, required=())):
        mapping["discount"] = optional["discount"]
        text = raw[mapping["discount"]].astype("string").str.strip().replace("", "0")
        discount = pd.to_numeric(text, errors="coerce")
        problems.append((~(discount.notna() & (discount >= 0) & (discount < 1)).to_numpy(dtype=bool), "discount",
                         "is not a discount (a fraction >= 0 and < 1)"))
    bad = np.zeros(n, dtype=bool)
    for mask, _, _ in problems:
        bad |= mask
    errors = list(rows.errors)
    lines = raw[LINE].to_numpy()
    for pos in np.flatnonzero(bad):  # one error per bad value, each naming its own column
        for mask, key, msg in problems:
            if mask[pos]:
                errors.append(InputError(f"{raw[mapping[key]].iloc[pos]!r} {msg}", field=mapping[key],
                                         row=int(lines[pos])))
    frame = pd.DataFrame(
        {
            "date": dates[~bad],
            "store": ids["store"][~bad],
            "item": ids["item"][~bad],
            "sales": sales[~bad],
            LINE: lines[~bad],
        }
    )
    if discount is not None:
        frame["discount"] = discount[~bad]
    dup = frame.duplicated(subset=["date", "store", "item"], keep="first")
    if dup.any():
        first_line = frame.drop_duplicates(subset=["date", "store", "item"]).set_index(["date", "store", "item"])[LINE]
        for _, row in frame[dup].iterrows():
            seen = int(first_line.loc[(row["date"], row["store"], row["item"])])
            errors.append(InputError(f"duplicate of line {seen} (same date, store and item)",
                                     field=mapping["date"], row=int(row[LINE])))
        frame = frame[~dup]
    _require_rows(frame, errors, path)
    return Loaded(frame=_typed_sales(frame.drop(columns=[LINE])), errors=errors)


def load_sales_csv(path: str | Path) -> pd.DataFrame:
    """Daily sales ``date, store, item, sales``; bad rows are skipped with a logged warning."""
    loaded = read_sales_csv(path)
    for err in loaded.errors:
        log.warning("skipped %s", err)
    return loaded.frame


def _typed_sales(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "date": pd.to_datetime(frame["date"]).astype("datetime64[ns]"),
            "store": frame["store"].astype("int64"),
            "item": frame["item"].astype("int64"),
            "sales": frame["sales"].astype("float64"),
        }
    )
    if "discount" in frame.columns:
        out["discount"] = frame["discount"].astype("float64")
    return out.sort_values(["store", "item", "date"], kind="stable").reset_index(drop=True)


def _require_rows(frame: pd.DataFrame, errors: list[InputError], path: str | Path) -> None:
    """Sort the row errors by line; refuse a file none of whose rows could be used."""
    errors.sort(key=lambda e: e.row or 0)
    if frame.empty:
        raise InputError(
            f"no usable rows in {Path(path).name}"
            + (f"; first problem: {errors[0]}" if errors else ": the file has a header but no data rows"),
            field="file",
        )
