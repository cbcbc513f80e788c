"""The replenishment game: one item, periodic review, lost sales, and the report that compares policies.

Each period ``t = 0 .. T-1``:

1. the policy sees its on-hand stock, its outstanding orders ``(quantity, promised arrival period)`` and every
   demand observed so far (the history, then the periods already played) and returns an order ``q >= 0``;
2. orders due arrive: an order placed in period ``t`` with lead time ``L`` arrives at the start of period
   ``t + L`` (so with ``L = 0`` before period ``t``'s demand); an order that is late arrives later, a lost one
   never does, and both stay on the outstanding list until they arrive;
3. demand ``d_t`` is served: ``sales = min(d_t, stock)``, the rest is lost;
4. ``reward_t = p * sales - h * ending stock``.

The normalised reward is the total reward over ``p * total demand``: 1.0 means every unit sold and nothing
left over. The game starts with no stock and no outstanding order (the same for every policy). The fate of
the order placed in period ``t`` (its delay, or that it is lost) is drawn per period from the game's random
generator before play and does not depend on the quantity, so two policies given the same seed face the same
demand and the same supplier (common random numbers).

Demand families (:data:`FAMILIES`, 5 history points then 50 played periods by default; noise is normal with a
coefficient of variation drawn in [0.2, 0.4], rounded and floored at 0): ``stationary``, ``level_shift`` (the
level is multiplied or divided by 1.5..2 at a random played period 10..30), ``trend`` (linear, +-0.5..2 % of
the start level per period), ``seasonal`` (a retail weekday profile with a random phase and strength),
``spike`` (2..4 bursts of 1..3 periods at 2..4 times the level, anywhere, history included) and
``autocorrelated`` (AR(1), coefficient 0.6..0.9). Lead-time models (:data:`LEAD_TIMES`): ``lead0``,
``lead4``, and ``uncertain`` (promised 4, actual 4 plus a delay of 0, 1, 2, 3 or 4 periods with probabilities
1/2, 1/4, 1/8, 1/16, 1/16, and 25 % of orders never arrive).

:func:`run_report` plays every family x lead time x critical ratio ``p / (p + h)`` (``p = 1``,
``h = (1 - CR) / CR``) over a fixed list of seeds with every policy in :data:`ml.replenishment.POLICIES`.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ml.errors import InputError
from ml.replenishment import POLICIES

log = logging.getLogger(__name__)

HISTORY_POINTS = 5
PLAYED_PERIODS = 50
CRITICAL_RATIOS = (0.5, 0.8, 0.95)
UNIT_PROFIT = 1.0
DEMAND_COLUMNS = ("demand", "sales", "units")


class Policy(Protocol):
    """What the game asks of a policy: an order quantity per period."""

    def order(self, on_hand: float, outstanding: Sequence[tuple[float, int]], demand_so_far: Sequence[float]) -> int:
        """Units to order now (an integer >= 0)."""
        ...


PolicyFactory = Callable[[Sequence[float], float, float, int], Policy]
"""``(history, unit_profit, holding_cost, promised_lead_time) -> policy``, e.g. a policy class."""


# -- lead times ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadTimeModel:
    """A supplier: the promised lead time, how late orders are (``delay_probs[k] = P(k periods late)``)
    and the share of orders that never arrive."""

    name: str
    promised: int
    lost_share: float = 0.0
    delay_probs: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.promised < 0:
            raise InputError(f"must be >= 0, got {self.promised}", field="lead_time")
        if not 0.0 <= self.lost_share < 1.0:
            raise InputError(f"must be in [0, 1), got {self.lost_share}", field="lost_share")
        if not self.delay_probs or any(p < 0 for p in self.delay_probs) or not math.isclose(sum(self.delay_probs), 1):
            raise InputError("delay probabilities must be >= 0 and sum to 1", field="delay_probs")

    def fates(self, rng: np.random.Generator, periods: int) -> list[int | None]:
        """Per placing period: the actual lead time of an order placed then, or ``None`` if it is lost."""
        delays = rng.choice(len(self.delay_probs), size=periods, p=np.asarray(self.delay_probs))
        lost = rng.random(periods) < self.lost_share
        return [None if gone else self.promised + int(k) for k, gone in zip(delays, lost, strict=True)]


UNCERTAIN_DELAYS = (0.5, 0.25, 0.125, 0.0625, 0.0625)

LEAD_TIMES: dict[str, LeadTimeModel] = {
    "lead0": LeadTimeModel("lead0", 0),
    "lead4": LeadTimeModel("lead4", 4),
    "uncertain": LeadTimeModel("uncertain", 4, lost_share=0.25, delay_probs=UNCERTAIN_DELAYS),
}


def lead_time_model(lead_time: int, lost_share: float = 0.0) -> LeadTimeModel:
    """A fixed lead time, or (``lost_share > 0``) the uncertain supplier's delays with that share lost."""
    if lost_share > 0:
        return LeadTimeModel(f"L{lead_time}, {lost_share:.0%} lost", lead_time, lost_share, UNCERTAIN_DELAYS)
    return LeadTimeModel(f"L{lead_time}", lead_time)


# -- the game -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GameResult:
    """Totals of one game (units, and money in units of ``p``)."""

    reward: float
    normalized: float
    sales: float
    lost: float
    holding: float
    demand: float
    ordered: float
    never_arrived: float
    periods: int


@dataclass
class _Order:
    quantity: float
    promised: int
    arrival: int | None


def _check_series(values: Sequence[float], name: str) -> list[float]:
    out = [float(v) for v in values]
    if any(not math.isfinite(v) or v < 0 for v in out):
        raise InputError("values must be finite numbers >= 0", field=name)
    return out


def _checked_order(q: object) -> int:
    if isinstance(q, bool) or not isinstance(q, int | np.integer) or q < 0:
        raise InputError(f"the policy must return an integer >= 0, got {q!r}", field="order")
    return int(q)


def play(
    policy_factory: PolicyFactory,
    demand: Sequence[float],
    history: Sequence[float],
    lead_time: LeadTimeModel,
    p: float,
    h: float,
    rng: np.random.Generator,
) -> GameResult:
    """Play ``len(demand)`` periods with a fresh policy; see the module docstring for the rules."""
    if p <= 0 or h < 0:
        raise InputError(f"need p > 0 and h >= 0, got p={p}, h={h}", field="profit" if p <= 0 else "holding")
    played, seen = _check_series(demand, "demand"), _check_series(history, "history")
    if not played:
        raise InputError("no period to play", field="demand")
    policy = policy_factory(list(seen), p, h, lead_time.promised)
    fates = lead_time.fates(rng, len(played))
    pending: list[_Order] = []
    on_hand = reward = sales_total = lost_total = holding = ordered = 0.0
    for t, d in enumerate(played):
        q = _checked_order(policy.order(on_hand, [(o.quantity, o.promised) for o in pending], list(seen)))
        if q > 0:
            fate = fates[t]
            pending.append(_Order(float(q), t + lead_time.promised, None if fate is None else t + fate))
            ordered += q
        on_hand += sum(o.quantity for o in pending if o.arrival == t)
        pending = [o for o in pending if o.arrival != t]
        sold = min(d, on_hand)
        on_hand -= sold
        reward += p * sold - h * on_hand
        sales_total, lost_total, holding = sales_total + sold, lost_total + d - sold, holding + h * on_hand
        seen.append(d)
    total_demand = float(sum(played))
    return GameResult(
        reward=reward,
        normalized=reward / (p * total_demand) if total_demand > 0 else math.nan,
        sales=sales_total,
        lost=lost_total,
        holding=holding,
        demand=total_demand,
        ordered=ordered,
        never_arrived=sum(o.quantity for o in pending if o.arrival is None),
        periods=len(played),
    )


# -- demand families ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One demand path: what the policy knows up front and what is played."""

    family: str
    seed: int
    history: list[float]
    demand: list[float]


def _noisy(rng: np.random.Generator, means: np.ndarray) -> np.ndarray:
    cv = rng.uniform(0.2, 0.4)
    return np.maximum(0.0, np.round(rng.normal(means, cv * means)))


def _base_level(rng: np.random.Generator) -> float:
    return float(rng.uniform(10.0, 40.0))


def _stationary(rng: np.random.Generator, n: int, history: int) -> np.ndarray:
    return _noisy(rng, np.full(n, _base_level(rng)))


def _level_shift(rng: np.random.Generator, n: int, history: int) -> np.ndarray:
    level = _base_level(rng)
    at = history + int(rng.integers(10, 31))
    factor = rng.uniform(1.5, 2.0)
    factor = factor if rng.random() < 0.5 else 1.0 / factor
    means = np.where(np.arange(n) < at, level, level * factor)
    return _noisy(rng, means)


def _trend(rng: np.random.Generator, n: int, history: int) -> np.ndarray:
    level = _base_level(rng)
    slope = rng.uniform(0.005, 0.02) * (1 if rng.random() < 0.5 else -1)
    means = np.maximum(0.2 * level, level * (1 + slope * np.arange(n)))
    return _noisy(rng, means)


WEEKDAY_PROFILE = np.array([0.85, 0.8, 0.85, 0.95, 1.15, 1.4, 1.0])


def _seasonal(rng: np.random.Generator, n: int, history: int) -> np.ndarray:
    level = _base_level(rng)
    strength = rng.uniform(0.5, 1.5)
    profile = 1 + strength * (WEEKDAY_PROFILE / WEEKDAY_PROFILE.mean() - 1)
    phase = int(rng.integers(0, 7))
    return _noisy(rng, level * profile[(np.arange(n) + phase) % 7])


def _spike(rng: np.random.Generator, n: int, history: int) -> np.ndarray:
    means = np.full(n, _base_level(rng))
    for _ in range(int(rng.integers(2, 5))):
        start, length = int(rng.integers(0, n)), int(rng.integers(1, 4))
        means[start : start + length] *= rng.uniform(2.0, 4.0)
    return _noisy(rng, means)


def _autocorrelated(rng: np.random.Generator, n: int, history: int) -> np.ndarray:
    level, phi, cv = _base_level(rng), rng.uniform(0.6, 0.9), rng.uniform(0.2, 0.4)
    sd = cv * level
    x = np.empty(n)
    x[0] = level + rng.normal(0, sd)
    for i in range(1, n):
        x[i] = level + phi * (x[i - 1] - level) + rng.normal(0, sd * math.sqrt(1 - phi * phi))
    return np.maximum(0.0, np.round(x))


FAMILIES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "stationary": _stationary,
    "level_shift": _level_shift,
    "trend": _trend,
    "seasonal": _seasonal,
    "spike": _spike,
    "autocorrelated": _autocorrelated,
}


def generate_demand(family: str, seed: int, periods: int = PLAYED_PERIODS, history: int = HISTORY_POINTS) -> Scenario:
    """A seeded demand path of ``history + periods`` values from one family."""
    if family not in FAMILIES:
        raise InputError(f"unknown family {family!r}", field="family", allowed=list(FAMILIES))
    if periods < 1 or history < 1:
        raise InputError("need at least one history point and one played period", field="periods")
    rng = np.random.default_rng([seed, list(FAMILIES).index(family)])
    values = [float(v) for v in FAMILIES[family](rng, history + periods, history)]
    return Scenario(family, seed, values[:history], values[history:])


# -- the report ---------------------------------------------------------------------------------------------


def costs_for(critical_ratio: float) -> tuple[float, float]:
    """``(p, h)`` with ``p = 1`` and ``p / (p + h) = critical_ratio``."""
    if not 0.0 < critical_ratio < 1.0:
        raise InputError(f"must be in (0, 1), got {critical_ratio}", field="critical_ratio")
    return UNIT_PROFIT, UNIT_PROFIT * (1 - critical_ratio) / critical_ratio


def relative_gain(ours: float, base: float) -> float:
    """``(ours - base) / |base|`` (NaN when the base is 0)."""
    return (ours - base) / abs(base) if base != 0 else math.nan


@dataclass(frozen=True)
class Cell:
    """Mean normalised reward of each policy over the seeds, for one family x lead time x critical ratio."""

    family: str
    lead: str
    critical_ratio: float
    base: float
    ours: float
    wins: int
    games: int

    @property
    def gain(self) -> float:
        return relative_gain(self.ours, self.base)


@dataclass
class Report:
    """Every cell, and the overall figures (see :meth:`overall`)."""

    policy: str
    seeds: list[int]
    cells: list[Cell] = field(default_factory=list)

    def overall(self, cells: Iterable[Cell] | None = None) -> dict[str, float]:
        """``mean_cell_gain``: mean over cells of ``(ours - base) / |base|``; ``total_gain``: summed ours over
        summed base minus 1 (the ratio of the mean normalised rewards); plus both means and the win share."""
        chosen = list(self.cells if cells is None else cells)
        base = sum(c.base for c in chosen)
        ours = sum(c.ours for c in chosen)
        gains = [c.gain for c in chosen if not math.isnan(c.gain)]
        return {
            "cells": float(len(chosen)),
            "base_mean": base / len(chosen),
            "ours_mean": ours / len(chosen),
            "mean_cell_gain": sum(gains) / len(gains) if gains else math.nan,
            "total_gain": ours / base - 1 if base else math.nan,
            "game_win_share": sum(c.wins for c in chosen) / sum(c.games for c in chosen),
        }

    def by(self, attribute: str) -> dict[str, dict[str, float]]:
        """The overall figures per value of ``family``, ``lead`` or ``critical_ratio``."""
        keys = dict.fromkeys(str(getattr(c, attribute)) for c in self.cells)
        return {k: self.overall(c for c in self.cells if str(getattr(c, attribute)) == k) for k in keys}


def _mean_normalized(
    factory: PolicyFactory, scenarios: Sequence[Scenario], lead: LeadTimeModel, p: float, h: float
) -> list[float]:
    return [
        play(factory, s.demand, s.history, lead, p, h, np.random.default_rng([s.seed, 7919])).normalized
        for s in scenarios
    ]


def run_report(
    seeds: Sequence[int],
    families: Sequence[str] = tuple(FAMILIES),
    leads: Sequence[str] = tuple(LEAD_TIMES),
    ratios: Sequence[float] = CRITICAL_RATIOS,
    *,
    policy: str = "rimas",
    baseline: str = "base_stock",
    periods: int = PLAYED_PERIODS,
    history: int = HISTORY_POINTS,
    policies: Mapping[str, PolicyFactory] | None = None,
) -> Report:
    """Play ``policy`` and ``baseline`` on every family x lead time x critical ratio x seed."""
    registry: Mapping[str, PolicyFactory] = dict(POLICIES) if policies is None else policies
    for name in (policy, baseline):
        if name not in registry:
            raise InputError(f"unknown policy {name!r}", field="policy", allowed=list(registry))
    for name in leads:
        if name not in LEAD_TIMES:
            raise InputError(f"unknown lead time {name!r}", field="lead", allowed=list(LEAD_TIMES))
    if not seeds:
        raise InputError("need at least one seed", field="seeds")
    report = Report(policy, list(seeds))
    for family in families:
        scenarios = [generate_demand(family, seed, periods, history) for seed in seeds]
        for lead in leads:
            for cr in ratios:
                p, h = costs_for(cr)
                ours = _mean_normalized(registry[policy], scenarios, LEAD_TIMES[lead], p, h)
                base = _mean_normalized(registry[baseline], scenarios, LEAD_TIMES[lead], p, h)
                wins = sum(o > b for o, b in zip(ours, base, strict=True))
                cell = Cell(family, lead, cr, float(np.mean(base)), float(np.mean(ours)), wins, len(seeds))
                report.cells.append(cell)
                log.debug("replenishment cell %s/%s/%.2f: base %.4f ours %.4f", family, lead, cr, cell.base, cell.ours)
    return report


# -- demand from a file -------------------------------------------------------------------------------------


def _demand_column(header: Sequence[str]) -> int | None:
    """Index of the demand column: ``demand``, ``sales`` or ``units`` (any case); the only column otherwise."""
    names = [h.strip().casefold() for h in header]
    for wanted in DEMAND_COLUMNS:
        if wanted in names:
            return names.index(wanted)
    return 0 if len(names) == 1 else None


def _parse_number(text: str, line: int) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise InputError(f"{text.strip()!r} is not a number", field="demand", row=line) from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"must be a finite number >= 0, got {text.strip()}", field="demand", row=line)
    return value


def parse_demand_csv(text: str) -> list[float]:
    """Demand values from CSV text: one per row, with a header line or (one column of numbers) without."""
    records = enumerate(csv.reader(io.StringIO(text.lstrip("\ufeff"))), start=1)
    rows = [(line, record) for line, record in records if any(cell.strip() for cell in record)]
    if not rows:
        raise InputError("the file is empty: expected one demand value per row", field="demand")
    first = rows[0][1]
    try:
        float(first[0])
        has_header = False
    except ValueError:
        has_header = True
    column = _demand_column(first) if has_header else 0
    if column is None:
        raise InputError("missing column", field="demand", allowed=list(DEMAND_COLUMNS))
    body = rows[1:] if has_header else rows
    values: list[float] = []
    for line, record in body:
        if column >= len(record):
            raise InputError(f"expected {column + 1} fields, found {len(record)}", field="demand", row=line)
        values.append(_parse_number(record[column], line))
    return values


def read_demand_csv(path: str | Path) -> list[float]:
    """:func:`parse_demand_csv` on a UTF-8 file (a byte-order mark is fine)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"file not found: {p.name}", field="demand")
    try:
        return parse_demand_csv(p.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{p.name} is not UTF-8 text (byte {exc.start})", field="demand") from exc
