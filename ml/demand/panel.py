"""Daily sales as a dense (series x day) panel, with the promotion calendar beside it.

Feature computation and baselines work on a matrix with one row per (store, item) series and one column per
day, which makes lags and rolling windows simple vectorised slices. Days a series has no row for, between
its first observation and the last date of the data, count as zero sales; days before a series' first
observation are unknown (NaN).

The discount calendar (``0`` = no promotion) is a second matrix that may reach *past* the last sales day:
promotions are planned ahead, so the days after the history can carry planned discounts. Days it does not
cover have no promotion. Sales data without a ``discount`` column (the public ``date,store,item,sales``
format) simply has no promotions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.csvio import resolve_columns
from ml.errors import InputError

SALES_COLUMNS = ("date", "store", "item", "sales")
SALES_ALIASES: dict[str, tuple[str, ...]] = {
    "date": ("date", "day"),
    "store": ("store", "store_id"),
    "item": ("item", "sku", "item_id"),
    "sales": ("sales", "units"),
}
"""Accepted column spellings (case-insensitive): the public ``date,store,item,sales`` and our table's names."""

DISCOUNT_ALIASES: dict[str, tuple[str, ...]] = {"discount": ("discount",)}
"""The optional discount column of a sales frame: the day's promotion discount as a fraction in [0, 1)."""


@dataclass
class Panel:
    """``values[s, d]`` = sales of series ``keys.iloc[s]`` on ``start + d`` days.

    ``discount[s, d]`` is the promotion discount of that day; it may have more columns than ``values``
    (planned discounts after the history) or fewer (no promotion where it does not reach). Left empty, the
    panel has no promotions.
    """

    keys: pd.DataFrame
    start: pd.Timestamp
    values: np.ndarray
    discount: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def __post_init__(self) -> None:
        if self.discount.size == 0:
            self.discount = np.zeros((self.values.shape[0], 0))
        if self.discount.shape[0] != self.values.shape[0]:
            raise ValueError("discount and values must have one row per series")

    @property
    def n_days(self) -> int:
        return int(self.values.shape[1])

    @property
    def has_promotions(self) -> bool:
        return bool(np.any(self.discount > 0))

    def discount_at(self, offsets: np.ndarray) -> np.ndarray:
        """(series x offsets) discounts, 0 where the calendar does not reach (before day 0 or after its end)."""
        idx = np.asarray(offsets, dtype=np.int64)
        ok = (idx >= 0) & (idx < self.discount.shape[1])
        out = np.zeros((self.values.shape[0], idx.size))
        out[:, ok] = self.discount[:, idx[ok]]
        return out

    @property
    def last_date(self) -> pd.Timestamp:
        return self.start + pd.Timedelta(days=self.n_days - 1)

    def dates(self, offsets: np.ndarray) -> pd.DatetimeIndex:
        """Calendar dates of day offsets (which may lie beyond the panel)."""
        return pd.DatetimeIndex(self.start + pd.to_timedelta(np.asarray(offsets), unit="D"))

    def head(self, n_days: int) -> Panel:
        """The first ``n_days`` days of sales (used to hold out the tail for backtests).

        The discount calendar is kept whole: the promotions of the held-out days were planned before them,
        so a forecast made at the cut-off knows them (their sales it does not).
        """
        return Panel(keys=self.keys, start=self.start, values=self.values[:, :n_days], discount=self.discount)

    def with_discounts(self, discount: np.ndarray) -> Panel:
        """The same sales with another discount calendar (``discount`` has one row per series)."""
        return Panel(keys=self.keys, start=self.start, values=self.values, discount=discount)


def check_sales_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Validate an in-memory sales frame (see :data:`SALES_ALIASES`); return it typed and sorted.

    An optional ``discount`` column (:data:`DISCOUNT_ALIASES`) is kept when present: a fraction in [0, 1),
    empty (NaN) meaning no promotion.
    """
    mapping = resolve_columns(frame.columns, {**SALES_ALIASES, **DISCOUNT_ALIASES}, required=SALES_COLUMNS)
    names = [c for c in (*SALES_COLUMNS, "discount") if c in mapping]
    frame = frame[[mapping[c] for c in names]].set_axis(names, axis=1)
    if len(frame) == 0:
        raise InputError("no sales rows", field="history")
    dates = pd.to_datetime(frame["date"], errors="coerce")
    if dates.isna().any():
        pos = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise InputError(f"{frame['date'].iloc[pos]!r} is not a date", field="date", row=pos + 1)
    out = pd.DataFrame({"date": dates.dt.normalize().astype("datetime64[ns]")})
    for name in ("store", "item"):
        num = pd.to_numeric(frame[name], errors="coerce")
        bad = num.isna() | (num != num.round())
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{frame[name].iloc[pos]!r} is not an integer id", field=name, row=pos + 1)
        out[name] = num.astype("int64").to_numpy()
    sales = pd.to_numeric(frame["sales"], errors="coerce")
    bad = sales.isna() | (sales < 0)
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{frame['sales'].iloc[pos]!r} is not a number >= 0", field="sales", row=pos + 1)
    out["sales"] = sales.astype("float64").to_numpy()
    if "discount" in frame.columns:
        out["discount"] = check_discount_values(frame["discount"])
    dup = out.duplicated(subset=["date", "store", "item"])
    if dup.any():
        pos = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError("duplicate (date, store, item)", field="date", row=pos + 1)
    return out.sort_values(["store", "item", "date"], kind="stable").reset_index(drop=True)


def check_discount_values(values: pd.Series, *, row_numbers: np.ndarray | None = None) -> np.ndarray:
    """Discounts as floats in [0, 1) (NaN -> 0); the first bad value raises naming the field and row."""
    num = pd.to_numeric(values, errors="coerce")
    bad = (values.notna() & num.isna()) | (num < 0) | (num >= 1)
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        row = int(row_numbers[pos]) if row_numbers is not None else pos + 1
        raise InputError(f"{values.iloc[pos]!r} is not a discount (a fraction >= 0 and < 1, e.g. 0.15)",
                         field="discount", row=row)
    return num.fillna(0.0).astype("float64").to_numpy()


def build_panel(frame: pd.DataFrame) -> Panel:
    """The panel of a sales frame (validated with :func:`check_sales_frame`), with its discounts if any."""
    sales = check_sales_frame(frame)
    start = sales["date"].min()
    end = sales["date"].max()
    n_days = int((end - start).days) + 1
    keys = sales[["store", "item"]].drop_duplicates().reset_index(drop=True)
    series = sales.groupby(["store", "item"], sort=True).ngroup().to_numpy()
    day = ((sales["date"] - start).dt.days).to_numpy()
    values = np.full((len(keys), n_days), np.nan)
    values[series, day] = sales["sales"].to_numpy()
    first = np.full(len(keys), n_days, dtype=np.int64)
    np.minimum.at(first, series, day)
    started = np.arange(n_days)[None, :] >= first[:, None]
    values = np.where(started & np.isnan(values), 0.0, values)
    discount = np.zeros((len(keys), n_days))
    if "discount" in sales.columns:
        discount[series, day] = sales["discount"].to_numpy()
    return Panel(keys=keys, start=pd.Timestamp(start), values=values, discount=discount)


def panel_to_frame(panel: Panel, offsets: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long frame ``date, store, item, <columns>`` for (series x offsets) arrays in ``columns``."""
    n_s, n_t = len(panel.keys), len(offsets)
    out = pd.DataFrame(
        {
            "date": np.tile(panel.dates(offsets).to_numpy(), n_s),
            "store": np.repeat(panel.keys["store"].to_numpy(), n_t),
            "item": np.repeat(panel.keys["item"].to_numpy(), n_t),
        }
    )
    for name, arr in columns.items():
        out[name] = np.asarray(arr).reshape(n_s * n_t)
    return out
