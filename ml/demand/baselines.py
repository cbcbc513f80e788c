"""Baseline forecasts for the demand backtest.

* seasonal naive (weekly): day ``T + k`` gets the value of the same weekday in the last observed week,
  ``y[T + k - 7 * ceil(k / 7)]``;
* same weekday last year: ``y[T + k - 364]`` (52 weeks back, same weekday), falling back to the seasonal
  naive value where last year is not in the history (unknown days count as 0).

``T`` is the last history day; both use history only.
"""

from __future__ import annotations

import numpy as np

from ml.demand.panel import Panel


def seasonal_naive(panel: Panel, horizon: int) -> np.ndarray:
    """(series x horizon) weekly seasonal-naive forecast after the panel's last day."""
    last = panel.n_days - 1
    k = np.arange(1, horizon + 1)
    idx = last + k - 7 * -(-k // 7)
    return np.nan_to_num(_take(panel.values, idx), nan=0.0)


def same_weekday_last_year(panel: Panel, horizon: int) -> np.ndarray:
    """(series x horizon) forecast: the same weekday 52 weeks earlier."""
    last = panel.n_days - 1
    idx = last + np.arange(1, horizon + 1) - 364
    out = _take(panel.values, idx)
    fallback = seasonal_naive(panel, horizon)
    return np.where(np.isnan(out), fallback, out)


def _take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    ok = (idx >= 0) & (idx < values.shape[1])
    out = np.full((values.shape[0], idx.size), np.nan)
    out[:, ok] = values[:, idx[ok]]
    return out
