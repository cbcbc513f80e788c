"""Replenishment policies for one item under periodic review with lost sales.

Both policies take ``(history, unit_profit, holding_cost, promised_lead_time)`` and answer
``order(on_hand, outstanding, demand_so_far) -> int``, where ``outstanding`` lists the orders not yet arrived
as ``(quantity, promised arrival period)`` (periods count from 0 at the first decision) and
``demand_so_far`` is the history followed by the demand of the periods already played. The target service
level is the critical ratio ``CR = p / (p + h)``.

:class:`BaseStockPolicy` is the textbook benchmark: order up to ``(1 + L) * mean + z(CR) * sqrt(1 + L) * sd``
of all demand seen (``sd`` is the sample standard deviation, ``ddof = 1``; 0 with a single point) minus the
inventory position (on hand plus everything outstanding), rounded, never negative.

:class:`ReplenishmentPolicy` ("rimas") is a myopic lost-sales newsvendor on sampled futures:

* demand model (refitted every period on the demand seen): an additive weekday profile when an F-test (1 %)
  on the series minus its centred weekly mean finds one (needs 3 weeks of data); then a choice by BIC
  between a constant level, a linear trend (Theil-Sen slope, damped when projected) and a step (the most
  recent level shift, each side at least 4 points and 80 % of the newer ones past the midpoint: only the
  data after it is used, and the choice is made again on it). Fits run on spike-winsorised values (running
  median +- 3 robust noise scales) and use 20 % trimmed means, so a burst of demand neither moves the level
  nor inflates the spread. The residuals give the noise scale and a lag-1 autocorrelation (used when
  significant: it carries the last residual forward and correlates the sampled noise);
* 500 demand paths over the next periods: forecast mean + the level's estimation error + AR(1) noise whose
  scale is drawn from its posterior given the residuals' degrees of freedom (short histories get wider
  spreads), floored at 0. The same random numbers are used at every decision, so orders are reproducible;
* supplier: it remembers its orders and sees which ones leave the outstanding list, so it learns the delay
  distribution (prior: almost always on time) and the share of orders that never arrive (Beta prior of 4 %,
  a few EM steps over the overdue orders). Every outstanding order is sampled to arrive with its
  probability of still arriving given how overdue it is (none once it is later than any delay seen, or than
  3 periods before any order has arrived), at a delay drawn from the learned distribution;
* decision: on each path the stock is rolled forward with lost sales (stock never below 0) until the new
  order would arrive (promised lead time + a sampled delay); the order is the CR quantile of the demand
  not covered then. Demand that will be lost before any order can arrive is not ordered for, which an
  inventory-position rule does order for.

It uses nothing but its arguments: not the true lead times, future demand or the demand family.

:func:`uncovered_demand_quantile` is the same decision rule on a forecast's distribution (lead-time and cover
demand from P50/P90), in closed form: the planning workflow's inventory planner (``ml.planning``) orders with it.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import ndtr
from scipy.stats import f as f_dist

from ml.errors import InputError

log = logging.getLogger(__name__)

WEEK = 7
PATHS = 500
SAMPLE_SEED = 20240917
MAX_CRITICAL_RATIO = 0.999
TREND_DAMPING = 0.85
LOST_PRIOR = (0.2, 4.8)
"""Beta prior on the share of orders that never arrive (mean 4 %, worth 5 orders)."""
DELAY_PRIOR = (0.45, 0.03, 0.01, 0.01)
"""Pseudo-counts of arrivals 0, 1, 2, 3 periods late before any order has arrived (worth half an order)."""


# -- validation ---------------------------------------------------------------------------------------------


def _finite_non_negative(value: float, name: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise InputError(f"must be a finite number >= 0, got {value!r}", field=name)
    return v


def _series(values: Sequence[float], name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InputError("must be a sequence of numbers", field=name) from None
    if arr.ndim != 1:
        raise InputError("must be a flat sequence of numbers", field=name)
    if arr.size and (not np.isfinite(arr).all() or (arr < 0).any()):
        raise InputError("values must be finite numbers >= 0", field=name)
    return arr


def _check_setup(history: Sequence[float], unit_profit: float, holding_cost: float, lead: int) -> np.ndarray:
    hist = _series(history, "history")
    if hist.size == 0:
        raise InputError("needs at least one demand value", field="history")
    if not math.isfinite(float(unit_profit)) or unit_profit <= 0:
        raise InputError(f"must be a finite number > 0, got {unit_profit!r}", field="unit_profit")
    _finite_non_negative(holding_cost, "holding_cost")
    if isinstance(lead, bool) or not isinstance(lead, int | np.integer) or lead < 0:
        raise InputError(f"must be an integer >= 0, got {lead!r}", field="promised_lead_time")
    return hist


def _check_outstanding(outstanding: Sequence[tuple[float, int]]) -> list[tuple[float, int]]:
    checked: list[tuple[float, int]] = []
    for item in outstanding:
        try:
            quantity, promised = item
        except (TypeError, ValueError):
            raise InputError("each entry must be (quantity, promised period)", field="outstanding") from None
        checked.append((_finite_non_negative(quantity, "outstanding"), int(promised)))
    return checked


def critical_ratio(unit_profit: float, holding_cost: float) -> float:
    """``p / (p + h)``, capped at 0.999 (a free-to-hold item would otherwise have no finite target)."""
    return min(unit_profit / (unit_profit + holding_cost), MAX_CRITICAL_RATIO)


def _round_order(quantity: float) -> int:
    return max(0, math.floor(quantity + 0.5))


# -- the benchmark ------------------------------------------------------------------------------------------


class BaseStockPolicy:
    """Order up to ``(1 + L) * mean + z(CR) * sqrt(1 + L) * sd`` of all demand seen, minus on hand and all
    outstanding orders (``sd`` with ``ddof = 1``)."""

    def __init__(self, history: Sequence[float], unit_profit: float, holding_cost: float, promised_lead_time: int):
        self.history = _check_setup(history, unit_profit, holding_cost, promised_lead_time)
        self.lead = int(promised_lead_time)
        self.z = NormalDist().inv_cdf(critical_ratio(unit_profit, holding_cost))

    def target(self, demand_so_far: Sequence[float]) -> float:
        """The order-up-to level."""
        d = _series(demand_so_far, "demand_so_far")
        if d.size == 0:
            raise InputError("needs at least one demand value", field="demand_so_far")
        sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
        n = 1 + self.lead
        return n * float(d.mean()) + self.z * math.sqrt(n) * sd

    def order(self, on_hand: float, outstanding: Sequence[tuple[float, int]], demand_so_far: Sequence[float]) -> int:
        position = _finite_non_negative(on_hand, "on_hand") + sum(q for q, _ in _check_outstanding(outstanding))
        return _round_order(self.target(demand_so_far) - position)


# -- demand model -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemandFit:
    """What the forecast needs: level and slope at the last observation, weekday profile, residual AR(1)."""

    level: float
    slope: float
    season: np.ndarray | None
    n: int
    sigma: float
    phi: float
    last_residual: float
    segment: int
    params: int

    def means(self, horizon: int) -> np.ndarray:
        """Expected demand of the next ``horizon`` periods (index 0 = the period about to be served)."""
        steps = np.arange(1, horizon + 1)
        damped = np.cumsum(TREND_DAMPING**steps)
        base = self.level + self.slope * damped + self.last_residual * self.phi**steps
        if self.season is not None:
            base = base + self.season[(self.n + steps - 1) % WEEK]
        return np.maximum(base, 0.0)


def _noise_scale(y: np.ndarray) -> float:
    """Robust noise standard deviation from first differences (insensitive to one level shift)."""
    if y.size < 3:
        return float(np.std(y)) if y.size > 1 else 0.0
    return 1.0483 * float(np.median(np.abs(np.diff(y))))


def _running_median(y: np.ndarray, width: int = 7) -> np.ndarray:
    half = width // 2
    padded = np.concatenate([np.full(half, np.nan), y, np.full(half, np.nan)])
    return np.nanmedian(sliding_window_view(padded, width), axis=1)


def _winsorise(y: np.ndarray, scale: float, limit: float = 3.0) -> np.ndarray:
    """Values clipped to their running median +- ``limit`` noise scales (tames spikes, keeps shifts)."""
    if y.size < 5 or scale <= 0:
        return y
    centre = _running_median(y)
    return np.clip(y, centre - limit * scale, centre + limit * scale)


def _trimmed_mean(y: np.ndarray, share: float = 0.2) -> float:
    if y.size < 5:
        return float(np.median(y))
    k = int(share * y.size)
    return float(np.mean(np.sort(y)[k : y.size - k]))


def _weekday_profile(y: np.ndarray) -> np.ndarray | None:
    """Additive weekday effects if an F-test (1 %) on the series minus its centred weekly mean finds them."""
    if y.size < 3 * WEEK:
        return None
    centred = np.convolve(y, np.ones(WEEK) / WEEK, mode="valid")
    detrended = y[WEEK // 2 : WEEK // 2 + centred.size] - centred
    scale = _noise_scale(detrended) or float(np.std(detrended))
    if scale > 0:
        detrended = np.clip(detrended, -3 * scale, 3 * scale)
    days = (np.arange(detrended.size) + WEEK // 2) % WEEK
    counts = np.bincount(days, minlength=WEEK)
    if counts.min() < 2:
        return None
    effects = np.bincount(days, weights=detrended, minlength=WEEK) / counts
    between = float(np.sum(counts * (effects - detrended.mean()) ** 2)) / (WEEK - 1)
    within_df = detrended.size - WEEK
    within = float(np.sum((detrended - effects[days]) ** 2)) / within_df
    if within <= 0 or between / within < f_dist.ppf(0.99, WEEK - 1, within_df):
        return None
    effects -= effects.mean()
    shrink = counts.min() / (counts.min() + 1.0)
    return np.asarray(effects * shrink)


def _theil_sen(y: np.ndarray) -> tuple[float, float]:
    """Slope (median of pairwise slopes) and the level it implies at the last point."""
    x = np.arange(y.size, dtype=float)
    i, j = np.triu_indices(y.size, k=1)
    slope = float(np.median((y[j] - y[i]) / (x[j] - x[i])))
    intercept = float(np.median(y - slope * x))
    return slope, intercept + slope * (y.size - 1)


def _rss(residuals: np.ndarray) -> float:
    return float(np.dot(residuals, residuals)) + 1e-9


def _best_step(y: np.ndarray) -> tuple[int, float] | None:
    """The split (first index of the new level) with the lowest residual sum of squares, each side at least
    4 points, and only if 80 % of the points after it sit on the new side of the midpoint; with that RSS."""
    n = y.size
    splits = np.arange(4, n - 3)
    if splits.size == 0:
        return None
    c1, c2 = np.cumsum(y), np.cumsum(y * y)
    left_mean = c1[splits - 1] / splits
    right_sum = c1[-1] - c1[splits - 1]
    right_mean = right_sum / (n - splits)
    rss = (c2[splits - 1] - splits * left_mean**2) + (c2[-1] - c2[splits - 1] - (n - splits) * right_mean**2)
    for i in np.argsort(rss):
        s, mid = int(splits[i]), 0.5 * (left_mean[i] + right_mean[i])
        after = y[s:]
        beyond = np.mean(after > mid) if right_mean[i] > left_mean[i] else np.mean(after < mid)
        if beyond >= 0.8:
            return s, float(max(rss[i], 0.0)) + 1e-9
    return None


def _bic(rss: float, n: int, params: int) -> float:
    return n * math.log(rss / n) + params * math.log(n)


def _level_and_slope(y: np.ndarray, depth: int = 0) -> tuple[float, float, int, int]:
    """``(level at the last point, slope, length of the segment used, parameters)`` by BIC among a
    constant, a line and a level shift (after which the choice is made again on the newer data)."""
    const = _trimmed_mean(y)
    scores = {"const": _bic(_rss(y - float(np.mean(y))), y.size, 1)}
    slope, end = _theil_sen(y) if y.size >= 8 else (0.0, const)
    if y.size >= 8:
        scores["line"] = _bic(_rss(y - (end - slope * np.arange(y.size - 1, -1, -1))), y.size, 2)
    step = _best_step(y) if y.size >= 8 and depth < 3 else None
    if step is not None:
        scores["step"] = _bic(step[1], y.size, 4)
    choice = min(scores, key=lambda k: scores[k])
    if choice == "line":
        return end, slope, y.size, 2
    if choice == "step" and step is not None:
        return _level_and_slope(y[step[0] :], depth + 1)
    return const, 0.0, y.size, 1


def _residual_ar1(residuals: np.ndarray) -> float:
    """Lag-1 autocorrelation of the residuals when clearly positive (0 otherwise), capped at 0.9."""
    if residuals.size < 10:
        return 0.0
    r = residuals - residuals.mean()
    denom = float(np.dot(r, r))
    if denom <= 0:
        return 0.0
    phi = float(np.dot(r[1:], r[:-1])) / denom
    return min(phi, 0.9) if phi > 2.0 / math.sqrt(residuals.size) else 0.0


def fit_demand(demand: np.ndarray) -> DemandFit:
    """Fit the demand model on every value seen (see the module docstring)."""
    season = _weekday_profile(demand)
    idx = np.arange(demand.size)
    y = demand - season[idx % WEEK] if season is not None else demand.astype(float)
    scale = _noise_scale(y)
    yw = _winsorise(y, scale)
    level, slope, segment, params = _level_and_slope(yw)
    seg = yw[yw.size - segment :]
    fitted = level - slope * np.arange(segment - 1, -1, -1)
    residuals = seg - fitted
    dof = max(segment - params, 1)
    sigma = math.sqrt(float(np.sum(residuals**2)) / dof) if segment > 1 else scale
    if segment < 5:
        sigma = max(sigma, scale)
    phi = _residual_ar1(residuals)
    last = float(np.clip(residuals[-1], -2 * sigma, 2 * sigma)) if phi > 0 else 0.0
    return DemandFit(
        level, slope, season, demand.size, sigma, phi, last, segment, params + (WEEK - 1 if season is not None else 0)
    )


# -- supplier learning --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Supplier:
    """What the orders seen so far say about the supplier."""

    lost_share: float
    delay_probs: np.ndarray
    """P(k periods late | the order arrives), k = 0, 1, ..."""

    def still_arrives(self, overdue: int) -> float:
        """P(an order arrives | it is ``overdue`` periods past its promised period and has not arrived)."""
        keep = 1.0 - self.lost_share
        if overdue <= 0:
            return keep
        later = float(self.delay_probs[overdue:].sum()) if overdue < self.delay_probs.size else 0.0
        return keep * later / (keep * later + self.lost_share) if later > 0 else 0.0

    def delays(self, at_least: int, uniforms: np.ndarray) -> np.ndarray:
        """Delays sampled (by inverse CDF of ``uniforms``) given they are at least ``at_least``; -1 if no delay
        that long is possible."""
        tail = self.delay_probs[at_least:]
        if tail.sum() <= 0:
            return np.full(uniforms.shape, -1)
        cdf = np.cumsum(tail) / tail.sum()
        return at_least + np.minimum(np.searchsorted(cdf, uniforms, side="right"), tail.size - 1)

    def arrival_offsets(self, overdue: int, uniforms: np.ndarray) -> np.ndarray:
        """Sampled delays of an order ``overdue`` periods past its promised period and not arrived yet; -1 where
        it never arrives."""
        chance = self.still_arrives(overdue)
        arrives = uniforms < chance
        delays = self.delays(max(overdue, 0), np.where(arrives, uniforms / max(chance, 1e-12), 0.0))
        return np.where(arrives, delays, -1)


def _supplier(delays: Sequence[int], overdue: Sequence[int]) -> Supplier:
    """Delays of the arrived orders and overdue periods of the missing ones -> learned supplier."""
    counts = np.zeros(max([*delays, len(DELAY_PRIOR) - 1]) + 1)
    counts[: len(DELAY_PRIOR)] += DELAY_PRIOR
    for k in delays:
        counts[k] += 1
    probs = counts / counts.sum()
    a, b = LOST_PRIOR
    lost = a / (a + b)
    for _ in range(5):
        guess = Supplier(lost, probs)
        missing = sum(1.0 - guess.still_arrives(k) for k in overdue)
        lost = (a + missing) / (a + b + len(delays) + len(overdue))
    return Supplier(lost, probs)


# -- the policy ---------------------------------------------------------------------------------------------


class ReplenishmentPolicy:
    """Order the critical-ratio quantile of the demand the stock will not cover when the order arrives, on
    sampled demand paths (shifts, trends, weekdays, bursts, autocorrelation) and a learned supplier."""

    def __init__(self, history: Sequence[float], unit_profit: float, holding_cost: float, promised_lead_time: int):
        self.history = _check_setup(history, unit_profit, holding_cost, promised_lead_time)
        self.lead = int(promised_lead_time)
        self.ratio = critical_ratio(unit_profit, holding_cost)
        self._pending: dict[int, float] = {}
        self._delays: list[int] = []
        self._period = 0

    @property
    def period(self) -> int:
        """Periods played so far (set by the last call)."""
        return self._period

    def order(self, on_hand: float, outstanding: Sequence[tuple[float, int]], demand_so_far: Sequence[float]) -> int:
        stock = _finite_non_negative(on_hand, "on_hand")
        orders = _check_outstanding(outstanding)
        demand = _series(demand_so_far, "demand_so_far")
        if demand.size < self.history.size:
            raise InputError("must start with the history", field="demand_so_far")
        now = demand.size - self.history.size
        self._period = now
        self._note_arrivals(orders, now)
        supplier = _supplier(self._delays, [now - p for q, p in orders if p < now and q > 0])
        quantity = self._quantity(stock, orders, demand, now, supplier)
        if quantity > 0:
            self._pending[now + self.lead] = float(quantity)
        else:
            self._pending.pop(now + self.lead, None)
        return quantity

    def _note_arrivals(self, orders: Sequence[tuple[float, int]], now: int) -> None:
        """Our orders missing from the outstanding list arrived last period: remember how late they were."""
        listed = Counter((round(q, 6), p) for q, p in orders)
        for promised, quantity in sorted(self._pending.items()):
            if promised >= now + self.lead:
                continue
            key = (round(quantity, 6), promised)
            if listed[key] > 0:
                listed[key] -= 1
                continue
            self._delays.append(max(0, now - 1 - promised))
            del self._pending[promised]

    def _quantity(
        self, stock: float, orders: Sequence[tuple[float, int]], demand: np.ndarray, now: int, supplier: Supplier
    ) -> int:
        fit = fit_demand(demand)
        horizon = self.lead + supplier.delay_probs.size
        rng = np.random.default_rng(SAMPLE_SEED)
        paths = _demand_paths(fit, horizon, rng)
        arrivals = np.zeros((PATHS, horizon))
        rows = np.arange(PATHS)
        for quantity, promised in orders:
            offsets = supplier.arrival_offsets(now - promised, rng.random(PATHS))
            when = promised + offsets - now
            ok = (offsets >= 0) & (when >= 0) & (when < horizon)
            np.add.at(arrivals, (rows[ok], when[ok]), quantity)
        new_at = self.lead + supplier.delays(0, rng.random(PATHS))
        need = _shortfall(stock, arrivals, paths)[rows, new_at]
        quantity = _round_order(float(np.quantile(need, self.ratio)))
        log.debug("replenishment t=%d need P50=%.1f order=%d", now, float(np.median(need)), quantity)
        return quantity


def _demand_paths(fit: DemandFit, horizon: int, rng: np.random.Generator) -> np.ndarray:
    """``PATHS x horizon`` sampled demand: forecast mean + level error + AR(1) noise, the noise scale drawn
    from its posterior (few residuals -> wider), floored at 0."""
    dof = max(fit.segment - fit.params, 2)
    spread = fit.sigma * np.minimum(np.sqrt(dof / rng.chisquare(dof, PATHS)), 3.0)
    effective = max(1.0, fit.segment * (1 - fit.phi) / (1 + fit.phi))
    level = rng.standard_normal(PATHS) * spread / math.sqrt(effective)
    shocks = rng.standard_normal((PATHS, horizon)) * math.sqrt(1 - fit.phi**2)
    noise = np.empty_like(shocks)
    carry = np.zeros(PATHS)
    for k in range(horizon):
        carry = fit.phi * carry + shocks[:, k]
        noise[:, k] = carry
    return np.asarray(np.maximum(0.0, fit.means(horizon) + level[:, None] + spread[:, None] * noise))


def _shortfall(stock: float, arrivals: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """Per path and period: demand minus the stock there would be without a new order (lost sales: stock
    never goes below 0)."""
    need = np.empty_like(paths)
    level = np.full(paths.shape[0], stock)
    for k in range(paths.shape[1]):
        level = level + arrivals[:, k]
        need[:, k] = paths[:, k] - level
        level = np.maximum(0.0, -need[:, k])
    return need


def uncovered_demand_quantile(
    stock: float, lead_mean: float, lead_sd: float, cover_mean: float, cover_sd: float, quantile: float
) -> float:
    """The policy's decision rule on a forecast instead of sampled paths: the ``quantile`` of the demand over the
    cover period (after the order arrives) that the stock will not meet, with lost sales before it arrives.

    Lead-time demand ``D_L ~ N(lead_mean, lead_sd)`` (floored at 0) uses up ``stock`` first, and what it leaves,
    ``max(0, stock - D_L)``, meets the cover-period demand ``D_C ~ N(cover_mean, cover_sd)``; demand met by
    nothing during the lead time is lost and is not ordered for. Returns the smallest ``x >= 0`` with
    ``P(D_C - max(0, stock - D_L) <= x) >= quantile`` (exact up to the integration grid over ``D_L``). With
    stock to spare through the lead time this is ``quantile(D_L + D_C) - stock``, the order-up-to gap."""
    for name, value in (("stock", stock), ("lead_mean", lead_mean), ("lead_sd", lead_sd),
                        ("cover_mean", cover_mean), ("cover_sd", cover_sd)):  # fmt: skip
        _finite_non_negative(value, name)
    if not 0 < quantile < 1:
        raise InputError(f"must be in (0, 1), got {quantile!r}", field="quantile")
    if lead_sd > 0:
        grid = np.linspace(-6.0, 6.0, 241)
        weights = np.exp(-0.5 * grid**2)
        lead = np.maximum(0.0, lead_mean + lead_sd * grid)
    else:
        weights, lead = np.ones(1), np.array([lead_mean])
    weights = weights / weights.sum()
    left = np.maximum(0.0, stock - lead)

    def covered(x: float) -> float:
        if cover_sd <= 0:
            return float(weights[(cover_mean - left) <= x].sum())
        return float(np.dot(weights, ndtr((x + left - cover_mean) / cover_sd)))

    if covered(0.0) >= quantile:
        return 0.0
    low, high = 0.0, cover_mean + lead_mean + 10 * (cover_sd + lead_sd) + 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (low, mid) if covered(mid) >= quantile else (mid, high)
    return high


POLICIES: dict[str, type[ReplenishmentPolicy] | type[BaseStockPolicy]] = {
    "rimas": ReplenishmentPolicy,
    "base_stock": BaseStockPolicy,
}
"""Policies by name, for the CLI and the report."""
