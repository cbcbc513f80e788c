"""Budget consolidation of a store plan: the expected profit of each block of units, funded best first.

**Diminishing returns.** With stock position ``P`` (on hand + on order) and demand ``D`` over the protection
interval taken as normal ``N(mean, sd)``, the ``k``-th extra unit ordered sells if ``D >= P + k``; otherwise it
is carried over at a holding cost ``h`` for the period. Its expected profit is

    E[profit of unit k] = m * P(D >= P + k) - h * P(D < P + k)

(``m`` the unit margin), non-increasing in ``k``: each further unit is less likely to sell. Units come in
blocks of ``step``; a block's expected profit is the sum over its units and its cost ``units * unit_cost``.
With ``sd = 0`` demand is certain (``P(D >= x)`` is 1 up to the mean, else 0).

**Allocation.** :func:`allocate_budget` funds blocks in decreasing expected profit per dollar across all lines
(ties: the line's ``priority`` rank, lower first, then its key, then the block's order). Within a line blocks
are funded in order, so a block is never funded before the ones ahead of it. For concave, separable returns
(each line's profit per dollar non-increasing, as :func:`marginal_order_values` gives) this greedy is the
optimum of the continuous problem, and it never cuts a whole line at a stroke: when the budget binds, every
line loses its least valuable units first. A block the remaining money cannot pay for in full is funded with
as many whole units as it can (pro rata profit), and cheaper blocks further down may still use what is left,
so the total is never above the budget. A block with negative expected profit is never funded, whatever
the budget. Integer units make the optimum a knapsack problem: the greedy result is within one unit's
profit of it, and exact when all units cost the same.

**Promotions cost no purchase budget.** A discount is paid for at the till, as margin given up on units
sold, not with cash out of the plan's purchase budget; the marketing planner already nets that margin in
each promotion's net benefit, so counting it here too would charge it twice. Only orders are funded here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ml.errors import InputError

_TOL = 1e-9


@dataclass(frozen=True)
class Increment:
    """One block of units of an order: units ``start + 1 .. start + units`` beyond the stock position."""

    start: int
    units: int
    cost: float
    expected_profit: float

    @property
    def profit_per_dollar(self) -> float:
        """Expected profit per dollar spent (infinite for a free block with positive profit)."""
        if self.cost > 0:
            return self.expected_profit / self.cost
        return math.inf if self.expected_profit > 0 else 0.0


@dataclass(frozen=True)
class BudgetLine:
    """One plan line to fund: ``requested`` units in ``increments`` (in order), ``priority`` rank (0 = first)."""

    key: str
    requested: int
    increments: Sequence[Increment]
    priority: int = 0


@dataclass(frozen=True)
class LineAllocation:
    """What one line got; ``cut`` says in words why fewer units than requested were funded (None if none)."""

    key: str
    requested: int
    funded: int
    cost: float
    expected_profit: float
    cut: str | None


@dataclass(frozen=True)
class Allocation:
    """Per line (in input order) and in total; ``binding`` is True when money ran out before worthwhile units."""

    lines: tuple[LineAllocation, ...]
    budget: float
    total_cost: float
    total_profit: float
    binding: bool
    cutoff_profit_per_dollar: float | None


def _finite(name: str, value: float, low: float | None = 0.0) -> float:
    v = float(value)
    if not math.isfinite(v) or (low is not None and v < low):
        rule = "" if low is None else f" >= {low:g}"
        raise InputError(f"must be a finite number{rule}, got {value!r}", field=name)
    return v


def _whole(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"must be a whole number >= {low}, got {value!r}", field=name)
    return value


def _survival(x: float, mean: float, sd: float) -> float:
    """P(D >= x) for D ~ N(mean, sd); a step at the mean when sd = 0."""
    if sd == 0:
        return 1.0 if x <= mean else 0.0
    return 0.5 * math.erfc((x - mean) / (sd * math.sqrt(2.0)))


def marginal_order_values(
    *,
    position: float,
    demand_mean: float,
    demand_sd: float,
    unit_margin: float,
    unit_cost: float,
    holding_cost_per_unit: float,
    step: int,
    quantity: int,
) -> list[Increment]:
    """The ``quantity`` units of an order in blocks of ``step`` (the last may be shorter), each valued as above."""
    pos = _finite("position", position, low=None)
    mean = _finite("demand_mean", demand_mean)
    sd = _finite("demand_sd", demand_sd)
    margin = _finite("unit_margin", unit_margin, low=None)
    cost = _finite("unit_cost", unit_cost)
    hold = _finite("holding_cost_per_unit", holding_cost_per_unit)
    size = _whole("step", step, 1)
    total = _whole("quantity", quantity, 0)
    out: list[Increment] = []
    for start in range(0, total, size):
        units = min(size, total - start)
        profit = 0.0
        for k in range(start + 1, start + units + 1):
            sells = _survival(pos + k, mean, sd)
            profit += margin * sells - hold * (1.0 - sells)
        out.append(Increment(start=start, units=units, cost=units * cost, expected_profit=profit))
    return out


def _check_lines(lines: Sequence[BudgetLine]) -> None:
    seen: set[str] = set()
    for i, line in enumerate(lines):
        name = f"lines[{i}]"
        if line.key in seen:
            raise InputError(f"key {line.key!r} appears twice", field=f"{name}.key")
        seen.add(line.key)
        _whole(f"{name}.requested", line.requested, 0)
        for j, inc in enumerate(line.increments):
            _whole(f"{name}.increments[{j}].units", inc.units, 1)
            _finite(f"{name}.increments[{j}].cost", inc.cost)
            _finite(f"{name}.increments[{j}].expected_profit", inc.expected_profit, low=None)
        units = sum(inc.units for inc in line.increments)
        if units != line.requested:
            raise InputError(
                f"the increments hold {units} units but {line.requested} are requested", field=f"{name}.increments"
            )


def _money(x: float) -> str:
    sign = "-" if x < 0 else ""
    whole = abs(x - round(x)) < 0.005
    return f"{sign}${abs(x):,.0f}" if whole else f"{sign}${abs(x):,.2f}"


def _ratio(x: float) -> str:
    return "unbounded" if math.isinf(x) else f"{x:.2f}"


def _unfunded(line: BudgetLine, funded: int) -> tuple[int, float, float, int, float]:
    """Unfunded units with non-negative profit (units, profit, cost), and those with negative profit (units, profit)."""
    units = profit = cost = 0.0
    loss_units, loss = 0, 0.0
    done = 0
    for inc in line.increments:
        left = inc.units - max(0, min(inc.units, funded - done))
        done += inc.units
        if left <= 0:
            continue
        share = left / inc.units
        if inc.expected_profit < 0:
            loss_units, loss = loss_units + left, loss + inc.expected_profit * share
        else:
            units, profit, cost = units + left, profit + inc.expected_profit * share, cost + inc.cost * share
    return int(units), profit, cost, loss_units, loss


def _cut_reason(line: BudgetLine, funded: int, broke_here: bool, cutoff: float | None, budget: float) -> str | None:
    """Why ``line`` got ``funded`` < ``requested`` units, naming the numbers; None when nothing was cut."""
    if funded >= line.requested:
        return None
    units, profit, cost, loss_units, loss = _unfunded(line, funded)
    parts = []
    if units:
        ratio = profit / cost if cost > 0 else math.inf
        ran_out = f"when the budget of {_money(budget)} ran out"
        if broke_here or cutoff is None:
            why = (
                f"the budget of {_money(budget)} ran out at these units, next in line at {_ratio(ratio)} "
                "expected profit per dollar"
            )
        elif ratio < cutoff - _TOL:
            why = (
                f"their expected profit per dollar ({_ratio(ratio)}) was below the last funded block's "
                f"({_ratio(cutoff)}) {ran_out}"
            )
        else:
            why = (
                f"their expected profit per dollar ({_ratio(ratio)}) tied with the last funded block's "
                f"({_ratio(cutoff)}), which ranked first (priority, then key), {ran_out}"
            )
        parts.append((units, why))
    if loss_units:
        parts.append(
            (
                loss_units,
                f"their expected profit is negative ({_money(loss)} in all: more likely to sit "
                "unsold than to sell), so they are never funded",
            )
        )
    head = f"cut {line.requested - funded} of {line.requested} units"
    if len(parts) == 1:
        return f"{head}: {parts[0][1]}"
    return f"{head}: " + "; ".join(f"{n} because {why}" for n, why in parts)


def _affordable(inc: Increment, room: float) -> int:
    """Whole units of ``inc`` that ``room`` dollars pay for (all of them when it is free)."""
    if inc.cost <= room + _TOL:
        return inc.units
    unit_cost = inc.cost / inc.units
    units = min(inc.units, max(0, math.floor(room / unit_cost + _TOL)))
    while units > 0 and units * unit_cost > room + _TOL:
        units -= 1
    return units


def allocate_budget(lines: Sequence[BudgetLine], budget: float) -> Allocation:
    """Fund the lines' blocks best profit per dollar first within ``budget`` (see the module docstring)."""
    cap = _finite("budget", budget)
    _check_lines(lines)
    order = sorted(
        (
            (inc.profit_per_dollar, line.priority, line.key, j, i)
            for i, line in enumerate(lines)
            for j, inc in enumerate(line.increments)
            if inc.expected_profit >= 0
        ),
        key=lambda t: (-t[0], t[1], t[2], t[3]),
    )
    funded, cost, profit = [0] * len(lines), [0.0] * len(lines), [0.0] * len(lines)
    stopped = [False] * len(lines)
    spent = 0.0
    cutoff: float | None = None
    broke: int | None = None
    partial: int | None = None  # the line whose block the money ran out in, part-funded
    for ratio, _, _, j, i in order:
        if stopped[i]:
            continue
        inc = lines[i].increments[j]
        units = _affordable(inc, cap - spent)
        if units < inc.units:
            stopped[i] = True  # a line's later blocks wait for this one
            if broke is None:
                broke = i
                if units > 0:
                    cutoff, partial = ratio, i
        elif broke is None:
            cutoff = ratio
        if units > 0:
            share = units / inc.units
            funded[i] += units
            cost[i] += inc.cost * share
            profit[i] += inc.expected_profit * share
            spent += inc.cost * share
    out = tuple(
        LineAllocation(
            key=line.key,
            requested=line.requested,
            funded=funded[i],
            cost=cost[i],
            expected_profit=profit[i],
            cut=_cut_reason(line, funded[i], partial == i, cutoff, cap),
        )
        for i, line in enumerate(lines)
    )
    return Allocation(
        lines=out,
        budget=cap,
        total_cost=sum(cost),
        total_profit=sum(profit),
        binding=broke is not None,
        cutoff_profit_per_dollar=cutoff if broke is not None else None,
    )
