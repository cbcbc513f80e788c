"""Planned promotions as a known-in-advance input of the demand forecaster.

Promotions are decided before they run, so a forecast may be told the discount of each future day. Two
layouts are accepted (column names case-insensitive, our table's spellings too):

* daily rows ``date, store, item, discount`` (``store_id``/``sku`` accepted), e.g. ``sales_daily``;
* promotion windows ``store, item, discount, starts_on, ends_on`` (inclusive), e.g. the ``promotions`` table.

``discount`` is a fraction in [0, 1) (0.15 = 15 % off; 0 = explicitly no promotion). A day without a row
has no promotion, unless the sales history itself carries a discount for it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ml.csvio import LINE, read_csv_rows, resolve_columns
from ml.demand.panel import Panel
from ml.errors import InputError

log = logging.getLogger(__name__)

DISCOUNT_COLUMNS = ("date", "store", "item", "discount")
"""The canonical (daily) layout returned by :func:`check_discounts_frame`."""

_ALIASES: dict[str, tuple[str, ...]] = {
    "date": ("date", "day"),
    "store": ("store", "store_id"),
    "item": ("item", "sku", "item_id"),
    "discount": ("discount",),
    "starts_on": ("starts_on", "start", "start_date"),
    "ends_on": ("ends_on", "end", "end_date"),
}
MAX_WINDOW_DAYS = 366
"""Longest promotion window accepted (a guard against a mistyped year)."""


def check_discounts_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Validate planned discounts (either layout); return daily rows ``date, store, item, discount``.

    Raises :class:`InputError` naming the field (and the row, 1-based) of the first problem.
    """
    good, errors = _parse(frame, np.arange(1, len(frame) + 1))
    if errors:
        raise errors[0]
    return good


def read_discounts_csv(path: str | Path) -> tuple[pd.DataFrame, list[InputError]]:
    """Read planned discounts from a CSV (either layout); bad rows are returned as errors with line numbers.

    Raises :class:`InputError` when the file cannot be used at all (missing columns, no good row).
    """
    rows = read_csv_rows(path)
    raw = rows.frame
    text = raw.drop(columns=[LINE]).apply(lambda col: col.astype("string").str.strip().replace("", pd.NA))
    good, errors = _parse(text, raw[LINE].to_numpy())
    errors = sorted([*rows.errors, *errors], key=lambda e: e.row or 0)
    if good.empty and errors:
        raise InputError(f"no usable rows in {Path(path).name}; first problem: {errors[0]}", field="file")
    return good, errors


def _parse(frame: pd.DataFrame, lines: np.ndarray) -> tuple[pd.DataFrame, list[InputError]]:
    """Both layouts to daily rows; one error per bad row (the row's first problem), overlaps included."""
    mapping = resolve_columns(frame.columns, _ALIASES, required=("store", "item", "discount"))
    windows = "starts_on" in mapping or "ends_on" in mapping
    if windows:
        for name in ("starts_on", "ends_on"):
            if name not in mapping:
                raise InputError("missing column (promotion windows need starts_on and ends_on)", field=name)
    elif "date" not in mapping:
        raise InputError("missing column: give daily rows with a date, or windows with starts_on and ends_on",
                         field="date")
    problems: list[tuple[np.ndarray, str, str]] = []
    dates: dict[str, pd.Series] = {}
    for name in ("starts_on", "ends_on") if windows else ("date",):
        parsed = pd.to_datetime(frame[mapping[name]], errors="coerce")
        dates[name] = parsed.dt.normalize()
        problems.append((parsed.isna().to_numpy(), name, "is not a date (expected YYYY-MM-DD)"))
    ids: dict[str, pd.Series] = {}
    for name in ("store", "item"):
        num = pd.to_numeric(frame[mapping[name]], errors="coerce")
        problems.append(((num.isna() | (num != num.round())).to_numpy(), name, "is not an integer id"))
        ids[name] = num
    disc = pd.to_numeric(frame[mapping["discount"]], errors="coerce")
    problems.append(((disc.isna() | (disc < 0) | (disc >= 1)).to_numpy(), "discount",
                     "is not a discount (a fraction >= 0 and < 1, e.g. 0.15)"))
    if windows:
        length = (dates["ends_on"] - dates["starts_on"]).dt.days + 1
        problems.append(((length < 1).to_numpy(dtype=bool), "ends_on", "is before starts_on"))
        problems.append(((length > MAX_WINDOW_DAYS).to_numpy(dtype=bool), "ends_on",
                         f"makes the window longer than {MAX_WINDOW_DAYS} days"))
    bad = np.zeros(len(frame), dtype=bool)
    for mask, _, _ in problems:
        bad |= mask
    errors: list[InputError] = []
    for pos in np.flatnonzero(bad):
        name, msg = next((name, msg) for mask, name, msg in problems if mask[pos])
        errors.append(InputError(f"{frame[mapping[name]].iloc[pos]!r} {msg}", field=name, row=int(lines[pos])))
    ok = ~bad
    if windows:
        n_days = ((dates["ends_on"] - dates["starts_on"]).dt.days + 1)[ok].to_numpy(dtype=np.int64)
        rep = np.repeat(np.flatnonzero(ok), n_days)
        within = np.arange(int(n_days.sum())) - np.repeat(np.cumsum(n_days) - n_days, n_days)
        day = dates["starts_on"].to_numpy()[rep] + within.astype("timedelta64[D]")
    else:
        rep = np.flatnonzero(ok)
        day = dates["date"].to_numpy()[rep]
    out = pd.DataFrame(
        {
            "date": pd.to_datetime(day).astype("datetime64[ns]"),
            "store": ids["store"].to_numpy()[rep].astype(np.int64),
            "item": ids["item"].to_numpy()[rep].astype(np.int64),
            "discount": disc.to_numpy(dtype=np.float64)[rep],
        }
    )
    line_of = lines[rep]
    dup = out.duplicated(subset=["date", "store", "item"], keep="first").to_numpy()
    if dup.any():
        reported: set[int] = set()
        for pos in np.flatnonzero(dup):
            line = int(line_of[pos])
            if line not in reported:
                reported.add(line)
                r = out.iloc[pos]
                errors.append(InputError(
                    f"store {r['store']} item {r['item']} already has a discount on {r['date'].date()}"
                    + (" (promotion windows overlap)" if windows else ""), field="date", row=line))
        out = out[~dup]
    errors.sort(key=lambda e: e.row or 0)
    return out.reset_index(drop=True), errors


def overlay_discounts(panel: Panel, discounts: pd.DataFrame, steps: int) -> Panel:
    """The panel with ``discounts`` (daily rows, as from :func:`check_discounts_frame`) written into its calendar.

    The calendar is extended to cover ``steps`` days after the history. Rows for series the panel does not
    hold, or for days before its start or after the ``steps`` days, are ignored; a row overrides the
    discount the history carried for that day.
    """
    n_days = panel.n_days + steps
    calendar = np.zeros((len(panel.keys), max(n_days, panel.discount.shape[1])))
    calendar[:, : panel.discount.shape[1]] = panel.discount
    index = pd.MultiIndex.from_frame(panel.keys[["store", "item"]])
    series = index.get_indexer(pd.MultiIndex.from_frame(discounts[["store", "item"]]))
    offset = ((discounts["date"] - panel.start).dt.days).to_numpy()
    use = (series >= 0) & (offset >= 0) & (offset < n_days)
    if (~use).any():
        log.debug("planned discounts: %d row(s) outside the series or days forecast were ignored", int((~use).sum()))
    calendar[series[use], offset[use]] = discounts["discount"].to_numpy()[use]
    return panel.with_discounts(calendar)
