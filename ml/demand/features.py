"""Features of the demand model: calendar, promotions, and sales lags/windows ending ``horizon`` days back.

For a target day ``t`` and a model horizon ``H`` every *sales* feature uses only days ``<= t - H``. A
forecast made on the last history day ``T`` for the days ``T+1 .. T+h`` (``h <= H``) therefore needs no
sales after ``T``: the whole horizon is computed in one pass, without feeding forecasts back in.

The promotion calendar is known in advance (promotions are planned before they run), so the day's own
discount is a feature of the target day: ``discount``, ``promo_day`` (1 on a promotion's first day, 0 without
a promotion), ``promo_days_left`` (1 on its last day, as far as the calendar reaches) and ``expected_lift``,
``(1 - discount) ** -elasticity``. The elasticity (``promo_elasticity``) is estimated from past promotions
only (the 364 days ending at ``t - H``), pooled over the stores of the series' item. Without a discount
column every promotion feature is 0 (``expected_lift`` 1, the elasticity unknown) and the model forecasts
from sales alone.

Sales windows are "baseline" statistics: promoted days are left out of them, so a past promotion does not
inflate them. Volume features are divided by the series' level (mean daily sales of the non-promoted days
among the 91 ending at ``t - H``, plus a small constant). The target is divided by the level times the
expected lift (:attr:`FeatureBlock.scale`) and forecasts are multiplied back: quantiles are preserved by that
positive scaling, one global model serves series of very different sizes, and the trees only have to learn
what the lift formula misses. Last year's (and the year before's) same weeks give the seasonal features.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.demand.panel import Panel

LEVEL_WINDOW = 91
LEVEL_FLOOR = 0.1
ELASTICITY_WINDOW = 364
MIN_PROMO_DAYS = 5
"""Promoted days (in :data:`ELASTICITY_WINDOW`) needed before a series' elasticity is estimated."""
MAX_ELASTICITY = 6.0
CALENDAR = ("dow", "dom", "month", "doy", "week")
PROMOTION = ("discount", "promo_day", "promo_days_left", "expected_lift")
RELATIVE = (
    "sw_lag1", "sw_lag2", "sw_lag3", "sw_lag4", "sw_mean4", "sw_mean8",
    "roll7", "roll28", "roll364", "std28",
    "ly_lag", "ly_win7", "ly_seasonal", "ly_win21", "ly2_seasonal",
)
ABSOLUTE = ("log_level", "zero_share28", "promo_elasticity")
FEATURE_NAMES: tuple[str, ...] = (*CALENDAR, *PROMOTION, *RELATIVE, *ABSOLUTE)


@dataclass
class FeatureBlock:
    """Features for (series x target offsets): ``matrix`` rows are series-major.

    ``level`` is the series' baseline level per row and ``scale`` the level times the expected promotion
    lift: the model's target is ``sales / scale`` and its forecasts are multiplied by ``scale``.
    """

    matrix: np.ndarray
    level: np.ndarray
    offsets: np.ndarray
    scale: np.ndarray


class _Windows:
    """Vectorised window statistics over a panel with NaN for unknown (or left-out) days."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        known = ~np.isnan(values)
        filled = np.where(known, values, 0.0)
        zero = np.zeros((values.shape[0], 1))
        self.csum = np.hstack([zero, np.cumsum(filled, axis=1)])
        self.csq = np.hstack([zero, np.cumsum(filled * filled, axis=1)])
        self.ccount = np.hstack([zero, np.cumsum(known, axis=1)])
        self.czero = np.hstack([zero, np.cumsum(known & (filled == 0), axis=1)])
        self.n_days = values.shape[1]

    def lag(self, idx: np.ndarray) -> np.ndarray:
        """values[:, idx] with NaN for indices outside the panel."""
        ok = (idx >= 0) & (idx < self.n_days)
        out = np.full((self.values.shape[0], idx.size), np.nan)
        out[:, ok] = self.values[:, idx[ok]]
        return out

    def _sums(self, end: np.ndarray, width: int, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hi = np.clip(end + 1, 0, self.n_days)
        lo = np.clip(end + 1 - width, 0, self.n_days)
        return table[:, hi] - table[:, lo], self.ccount[:, hi] - self.ccount[:, lo]

    def total(self, end: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Sum and count of the known values in [end - width + 1, end]."""
        return self._sums(end, width, self.csum)

    def mean(self, end: np.ndarray, width: int) -> np.ndarray:
        """Mean of the known values in [end - width + 1, end] per series and end."""
        total, count = self._sums(end, width, self.csum)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def std(self, end: np.ndarray, width: int) -> np.ndarray:
        total, count = self._sums(end, width, self.csum)
        sq, _ = self._sums(end, width, self.csq)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / np.maximum(count, 1)
            var = np.maximum(sq / np.maximum(count, 1) - mean * mean, 0.0)
            return np.where(count > 1, np.sqrt(var), np.nan)

    def zero_share(self, end: np.ndarray, width: int) -> np.ndarray:
        zeros, count = self._sums(end, width, self.czero)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, zeros / np.maximum(count, 1), np.nan)


def same_weekday_lag(horizon: int) -> int:
    """Smallest multiple of 7 that is at least ``horizon``: the nearest usable same-weekday lag."""
    return 7 * -(-horizon // 7)


def promotion_runs(discount: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per day of a (series x day) discount calendar: (day of the running promotion, days it has left).

    Both are 1-based (1 = first day, resp. last day) and 0 on days without a promotion; a promotion that
    reaches the calendar's last column is taken to end there.
    """
    n_days = discount.shape[1]
    on = discount > 0
    pos = np.arange(n_days)[None, :]
    last_off = np.maximum.accumulate(np.where(on, -1, pos), axis=1)
    next_off = np.minimum.accumulate(np.where(on, n_days, pos)[:, ::-1], axis=1)[:, ::-1]
    return np.where(on, pos - last_off, 0), np.where(on, next_off - pos, 0)


def _elasticity(panel: Panel, base: _Windows, origin: np.ndarray) -> np.ndarray:
    """Per series and origin: the promotion elasticity of the series' item, pooled over its stores.

    Model: a promoted day sells ``baseline * exp(e * x)`` with depth ``x = -log(1 - discount)``. For each
    series, the promoted and the non-promoted days among the :data:`ELASTICITY_WINDOW` days ending at
    ``origin`` give ``L = log(mean promoted sales / mean baseline sales)``; pooled over the item's stores
    (weighted by promoted days), ``L ~ e * mean(x) + e**2 * var(x) / 2`` is solved for ``e`` (the second
    term corrects for mixing shallow and deep discounts). NaN with fewer than :data:`MIN_PROMO_DAYS`
    promoted days or no baseline sales.
    """
    hist_disc = panel.discount_at(np.arange(panel.n_days))
    promoted = (hist_disc > 0) & ~np.isnan(panel.values)
    depth = -np.log1p(-hist_disc)
    sales_sum, n_promo = _Windows(np.where(promoted, panel.values, np.nan)).total(origin, ELASTICITY_WINDOW)
    x_sum, _ = _Windows(np.where(promoted, depth, np.nan)).total(origin, ELASTICITY_WINDOW)
    x2_sum, _ = _Windows(np.where(promoted, depth * depth, np.nan)).total(origin, ELASTICITY_WINDOW)
    baseline = base.mean(origin, ELASTICITY_WINDOW)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.log((sales_sum / np.maximum(n_promo, 1)) / baseline)
    ok = (n_promo > 0) & (baseline > 0) & (sales_sum > 0) & np.isfinite(log_ratio)
    item = pd.factorize(panel.keys["item"])[0] if len(panel.keys) else np.zeros(0, dtype=np.int64)
    n_items = int(item.max()) + 1 if item.size else 0
    pooled: dict[str, np.ndarray] = {}
    for name, arr in (("l", n_promo * log_ratio), ("x", x_sum), ("x2", x2_sum), ("n", n_promo)):
        acc = np.zeros((n_items, origin.size))
        np.add.at(acc, item, np.where(ok, arr, 0.0))
        pooled[name] = acc
    n = np.maximum(pooled["n"], 1.0)
    lr, xm = pooled["l"] / n, pooled["x"] / n
    var = np.maximum(pooled["x2"] / n - xm * xm, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        quadratic = (np.sqrt(np.maximum(xm * xm + 2.0 * var * lr, 0.0)) - xm) / var
        est = np.where(var > 1e-6, quadratic, lr / xm)
    good = (pooled["n"] >= MIN_PROMO_DAYS) & (xm > 0) & np.isfinite(est)
    return np.where(good, np.clip(est, 0.0, MAX_ELASTICITY), np.nan)[item]


def build_features(panel: Panel, offsets: np.ndarray, horizon: int, *, history_discounts: bool = True) -> FeatureBlock:
    """Features for every series at target day offsets ``offsets`` (which may lie after the panel's end).

    Only sales of panel days ``<= offset - horizon`` are read; discounts are read up to the calendar's end.
    With ``history_discounts=False`` the past discounts are treated as unknown (no baseline masking, no
    elasticity estimate) while the target days' discounts are still used: the situation of a history
    without a discount column and a plan for the forecast days only.
    """
    t = np.asarray(offsets, dtype=np.int64)
    if t.size and int(t.max()) - horizon > panel.n_days - 1:
        raise ValueError("target day too far beyond the history for this horizon")
    n_s = panel.values.shape[0]
    past = panel if history_discounts else panel.with_discounts(np.zeros((n_s, 0)))
    promoted = past.discount_at(np.arange(panel.n_days)) > 0
    w = _Windows(panel.values)
    base = _Windows(np.where(promoted, np.nan, panel.values))  # baseline: promoted days left out
    origin = t - horizon
    k0 = same_weekday_lag(horizon)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows are expected at the start of a series
        level_base = base.mean(origin, LEVEL_WINDOW)
        level = np.nan_to_num(np.where(np.isnan(level_base), w.mean(origin, LEVEL_WINDOW), level_base),
                              nan=0.0) + LEVEL_FLOOR
        dates = panel.dates(t)
        cal = {
            "dow": dates.day_of_week.to_numpy(),
            "dom": dates.day.to_numpy(),
            "month": dates.month.to_numpy(),
            "doy": dates.day_of_year.to_numpy(),
            "week": dates.isocalendar().week.to_numpy(dtype=np.int64),
        }
        calendar_end = max(int(t.max()) + 1 if t.size else 0, panel.discount.shape[1])
        day, left = promotion_runs(panel.discount_at(np.arange(calendar_end)))
        disc = panel.discount_at(t)
        elasticity = _elasticity(past, base, origin)
        with np.errstate(invalid="ignore"):
            lift = np.where(disc > 0, (1.0 - disc) ** -elasticity, 1.0)
        promotion = {
            "discount": disc,
            "promo_day": day[:, t].astype(np.float64) if t.size else disc,
            "promo_days_left": left[:, t].astype(np.float64) if t.size else disc,
            "expected_lift": lift,
        }

        sw = [base.lag(t - k0 - 7 * i) for i in range(8)]
        ly_win7 = base.mean(t - 364 + 3, 7)
        ly_roll28 = base.mean(origin - 364, 28)
        roll28 = base.mean(origin, 28)
        with np.errstate(invalid="ignore", divide="ignore"):
            ly_seasonal = np.where(ly_roll28 > 0, roll28 * ly_win7 / ly_roll28, np.nan)
        ly_win21 = base.mean(t - 364 + 10, 21)
        ly2_win = base.mean(t - 728 + 10, 21)
        ly2_roll28 = base.mean(origin - 728, 28)
        with np.errstate(invalid="ignore", divide="ignore"):
            r1 = np.where(ly_roll28 > 0, ly_win21 / ly_roll28, np.nan)
            r2 = np.where(ly2_roll28 > 0, ly2_win / ly2_roll28, np.nan)
            ly2_seasonal = roll28 * np.nanmean(np.stack([r1, r2]), axis=0)
        sw_stack = np.stack(sw)
        relative = {
            "sw_lag1": sw[0],
            "sw_lag2": sw[1],
            "sw_lag3": sw[2],
            "sw_lag4": sw[3],
            "sw_mean4": np.nanmean(sw_stack[:4], axis=0) if n_s else sw[0],
            "sw_mean8": np.nanmean(sw_stack, axis=0) if n_s else sw[0],
            "roll7": base.mean(origin, 7),
            "roll28": roll28,
            "roll364": base.mean(origin, 364),
            "std28": base.std(origin, 28),
            "ly_lag": base.lag(t - 364),
            "ly_win7": ly_win7,
            "ly_seasonal": ly_seasonal,
            "ly_win21": ly_win21,
            "ly2_seasonal": ly2_seasonal,
        }
    absolute = {"log_level": np.log(level), "zero_share28": w.zero_share(origin, 28),
                "promo_elasticity": elasticity}

    cols: list[np.ndarray] = []
    for name in CALENDAR:
        cols.append(np.broadcast_to(cal[name][None, :], (n_s, t.size)).astype(np.float64))
    for name in PROMOTION:
        cols.append(promotion[name])
    for name in RELATIVE:
        cols.append(relative[name] / level)
    for name in ABSOLUTE:
        cols.append(absolute[name])
    matrix = np.stack([c.reshape(-1) for c in cols], axis=1)
    scale = level * np.where(np.isfinite(lift), lift, 1.0)
    return FeatureBlock(matrix=matrix, level=level.reshape(-1), offsets=t, scale=scale.reshape(-1))
