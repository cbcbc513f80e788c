"""Budget consolidation: diminishing returns per block, greedy funding by profit per dollar, partial cuts."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.budget import BudgetLine, Increment, allocate_budget, marginal_order_values
from ml.errors import InputError


def _line(key: str, unit_cost: float, unit_profits: list[float], step: int = 1, priority: int = 0) -> BudgetLine:
    incs = []
    for start in range(0, len(unit_profits), step):
        block = unit_profits[start : start + step]
        incs.append(Increment(start=start, units=len(block), cost=unit_cost * len(block), expected_profit=sum(block)))
    return BudgetLine(key=key, requested=len(unit_profits), increments=incs, priority=priority)


def test_marginal_values_match_the_formula_and_diminish() -> None:
    incs = marginal_order_values(
        position=10,
        demand_mean=20,
        demand_sd=5,
        unit_margin=4.0,
        unit_cost=6.0,
        holding_cost_per_unit=0.5,
        step=5,
        quantity=23,
    )
    assert [i.units for i in incs] == [5, 5, 5, 5, 3] and [i.start for i in incs] == [0, 5, 10, 15, 20]
    assert incs[0].cost == 30.0 and incs[-1].cost == 18.0
    # unit k = 1: P(D >= 11) = 1 - Phi(-1.8) = 0.96407; profit = 4 * 0.96407 - 0.5 * 0.03593
    s = [0.5 * math.erfc((10 + k - 20) / (5 * math.sqrt(2))) for k in range(1, 6)]
    assert incs[0].expected_profit == pytest.approx(sum(4 * p - 0.5 * (1 - p) for p in s))
    per_unit = [i.expected_profit / i.units for i in incs]
    assert all(a >= b for a, b in itertools.pairwise(per_unit))
    assert per_unit[-1] < 0  # units far above demand: more likely carried over than sold


def test_certain_demand_has_a_step() -> None:
    incs = marginal_order_values(
        position=0,
        demand_mean=3,
        demand_sd=0,
        unit_margin=2.0,
        unit_cost=1.0,
        holding_cost_per_unit=0.25,
        step=1,
        quantity=5,
    )
    assert [i.expected_profit for i in incs] == [2.0, 2.0, 2.0, -0.25, -0.25]


def test_budget_not_binding_cuts_nothing() -> None:
    lines = [_line("a", 2.0, [3, 2, 1], step=2), _line("b", 1.0, [1, 0.5])]
    alloc = allocate_budget(lines, 100.0)
    assert not alloc.binding and alloc.cutoff_profit_per_dollar is None
    assert [(a.funded, a.cut) for a in alloc.lines] == [(3, None), (2, None)]
    assert alloc.total_cost == pytest.approx(8.0) and alloc.total_profit == pytest.approx(7.5)


def test_identical_lines_and_half_the_budget_are_both_cut_partly() -> None:
    profits = [5.0, 4.0, 3.0, 2.0, 1.0, 0.5]
    lines = [_line("a", 1.0, profits), _line("b", 1.0, profits)]
    alloc = allocate_budget(lines, 6.0)
    assert [a.funded for a in alloc.lines] == [3, 3]
    assert alloc.binding and alloc.total_cost == pytest.approx(6.0) and alloc.total_profit == pytest.approx(24.0)
    assert all(a.cut is not None and a.cut.startswith("cut 3 of 6 units") for a in alloc.lines)


def test_cut_reason_names_the_numbers() -> None:
    # line a: 100 units at $10 worth 0.11/$ then 40 at 0.03/$; line b: 100 units at 0.20/$; budget $5,000
    a = BudgetLine("a", 140, [Increment(0, 100, 1000.0, 110.0), Increment(100, 40, 400.0, 12.0)], priority=1)
    b = BudgetLine("b", 100, [Increment(0, 100, 4000.0, 800.0)], priority=0)
    alloc = allocate_budget([a, b], 5000.0)
    got = {x.key: x for x in alloc.lines}
    assert got["b"].funded == 100 and got["b"].cut is None
    assert got["a"].funded == 100
    assert got["a"].cut == (
        "cut 40 of 140 units: their expected profit per dollar (0.03) was below the last "
        "funded block's (0.11) when the budget of $5,000 ran out"
    )
    assert alloc.cutoff_profit_per_dollar == pytest.approx(0.11)


def test_negative_units_are_never_funded_and_say_so() -> None:
    line = _line("a", 1.0, [2.0, 1.0, -0.5, -0.5])
    alloc = allocate_budget([line], 1000.0)
    assert alloc.lines[0].funded == 2 and not alloc.binding
    assert "cut 2 of 4 units" in (alloc.lines[0].cut or "") and "-$1" in (alloc.lines[0].cut or "")


def test_ties_are_broken_by_priority_then_key() -> None:
    lines = [_line("b", 1.0, [1.0]), _line("a", 1.0, [1.0]), _line("c", 1.0, [1.0], priority=-1)]
    alloc = allocate_budget(lines, 2.0)
    assert {x.key: x.funded for x in alloc.lines} == {"b": 0, "a": 1, "c": 1}
    assert "tied" in (alloc.lines[0].cut or "")


def _brute_force(lines: list[BudgetLine], budget: float) -> float:
    per_unit = []
    for line in lines:
        values = [
            (inc.cost / inc.units, inc.expected_profit / inc.units) for inc in line.increments for _ in range(inc.units)
        ]
        per_unit.append(values)
    best = 0.0
    for qty in itertools.product(*(range(len(v) + 1) for v in per_unit)):
        cost = sum(sum(c for c, _ in v[:q]) for v, q in zip(per_unit, qty, strict=True))
        if cost <= budget + 1e-9:
            best = max(best, sum(sum(p for _, p in v[:q]) for v, q in zip(per_unit, qty, strict=True)))
    return best


_concave = st.lists(st.floats(-1.0, 10.0), min_size=1, max_size=4).map(lambda v: sorted(v, reverse=True))


@settings(max_examples=60, deadline=None)
@given(st.lists(_concave, min_size=1, max_size=3), st.floats(0.0, 12.0))
def test_greedy_is_optimal_when_units_cost_the_same(profits: list[list[float]], budget: float) -> None:
    lines = [_line(f"k{i}", 1.0, p) for i, p in enumerate(profits)]
    alloc = allocate_budget(lines, budget)
    assert alloc.total_profit == pytest.approx(_brute_force(lines, budget), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.5, 5.0), _concave), min_size=1, max_size=3), st.floats(0.0, 20.0))
def test_greedy_is_within_one_unit_of_the_optimum(spec: list[tuple[float, list[float]]], budget: float) -> None:
    lines = [_line(f"k{i}", c, p) for i, (c, p) in enumerate(spec)]
    alloc = allocate_budget(lines, budget)
    best = _brute_force(lines, budget)
    assert alloc.total_profit <= best + 1e-9
    one_unit = max(0.0, *(max(p) for _, p in spec))  # a unit that only loses money is never funded: no slack for it
    assert alloc.total_profit >= best - one_unit - 1e-9


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 50.0), st.integers(1, 40), st.integers(1, 7), st.floats(0, 100), st.floats(0, 30)),
        min_size=1,
        max_size=5,
    ),
    st.floats(0.0, 3000.0),
)
def test_never_over_budget_and_never_a_negative_block(
    spec: list[tuple[float, int, int, float, float]], budget: float
) -> None:
    lines = []
    for i, (cost, qty, step, mean, sd) in enumerate(spec):
        incs = marginal_order_values(
            position=5,
            demand_mean=mean,
            demand_sd=sd,
            unit_margin=3.0,
            unit_cost=cost,
            holding_cost_per_unit=0.4,
            step=step,
            quantity=qty,
        )
        lines.append(BudgetLine(key=f"s{i}", requested=qty, increments=incs, priority=i % 2))
    alloc = allocate_budget(lines, budget)
    assert alloc.total_cost <= budget + 1e-6
    for line, got in zip(lines, alloc.lines, strict=True):
        assert 0 <= got.funded <= line.requested
        assert got.expected_profit >= -1e-9
        assert (got.cut is None) == (got.funded == line.requested)
        if got.cut:
            assert got.cut.startswith(f"cut {line.requested - got.funded} of {line.requested} units")


def test_bad_input_names_the_field() -> None:
    with pytest.raises(InputError) as info:
        allocate_budget([BudgetLine("a", 3, [Increment(0, 2, 2.0, 1.0)])], 10.0)
    assert info.value.field == "lines[0].increments"
    with pytest.raises(InputError) as info:
        allocate_budget([], -1.0)
    assert info.value.field == "budget"
    with pytest.raises(InputError) as info:
        marginal_order_values(
            position=0,
            demand_mean=1,
            demand_sd=1,
            unit_margin=1,
            unit_cost=1,
            holding_cost_per_unit=0,
            step=0,
            quantity=3,
        )
    assert info.value.field == "step"
