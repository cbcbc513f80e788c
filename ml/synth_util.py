"""Small shared helpers for the synthetic data generator: date columns and money rounding."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

DATE_DTYPE = "datetime64[ns]"
"""dtype of every date column the generator returns (midnight timestamps; NaT where the value is NULL)."""


def as_date_series(values: Sequence[dt.date | None]) -> pd.Series:
    """A date-only datetime64 Series from python dates, with NaT for ``None``."""
    arr = np.array(
        [np.datetime64(v, "D") if v is not None else np.datetime64("NaT", "D") for v in values],
        dtype="datetime64[D]",
    )
    return pd.Series(arr.astype(DATE_DTYPE))


def day_numbers_to_dates(days: np.ndarray, origin: dt.date) -> np.ndarray:
    """Integer day offsets from ``origin`` to a datetime64 array (date-only)."""
    return (np.datetime64(origin, "D") + days.astype("timedelta64[D]")).astype(DATE_DTYPE)


def round_money(x: np.ndarray | pd.Series) -> np.ndarray:
    """Round amounts to cents (half away from zero on the decimal value, not on the binary float)."""
    arr = np.asarray(x, dtype=float)
    return np.sign(arr) * np.floor(np.abs(arr) * 100 + 0.5 + 1e-9) / 100
