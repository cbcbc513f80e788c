"""The replenishment game's accounting, base-stock's formula, the policy's contract and the simulate CLI."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from ml.cli import main
from ml.errors import InputError
from ml.replenishment import POLICIES, BaseStockPolicy, ReplenishmentPolicy, _supplier
from ml.replenishment_game import (
    FAMILIES,
    LEAD_TIMES,
    LeadTimeModel,
    generate_demand,
    parse_demand_csv,
    play,
    run_report,
)


class Scripted:
    """Orders a fixed sequence and records what it was shown."""

    script: ClassVar[list[int]] = []
    seen: ClassVar[list[tuple[float, list[tuple[float, int]], list[float]]]] = []

    def __init__(self, history: Sequence[float], unit_profit: float, holding_cost: float, lead: int) -> None:
        self.t = 0

    def order(self, on_hand: float, outstanding: Sequence[tuple[float, int]], demand_so_far: Sequence[float]) -> int:
        Scripted.seen.append((on_hand, list(outstanding), list(demand_so_far)))
        q = Scripted.script[self.t]
        self.t += 1
        return q


def _scripted(orders: list[int]) -> type[Scripted]:
    Scripted.script, Scripted.seen = orders, []
    return Scripted


def test_game_accounting_lead_zero_by_hand() -> None:
    # t0: 4 arrive, 3 sold, 1 left (reward 2*3 - 0.5*1); t1: 2 arrive, 3 on hand, 3 of 5 sold; t2: nothing.
    result = play(_scripted([4, 2, 0]), [3, 5, 2], [1, 1], LEAD_TIMES["lead0"], 2.0, 0.5, np.random.default_rng(0))
    assert result.reward == pytest.approx(11.5)
    assert (result.sales, result.lost, result.holding, result.demand) == (6, 4, 0.5, 10)
    assert result.normalized == pytest.approx(11.5 / 20)
    assert Scripted.seen[1] == (1.0, [], [1.0, 1.0, 3.0])


def test_game_accounting_lead_two_by_hand() -> None:
    # the 6 ordered at t0 arrive at the start of t2 (after t2's decision); t0 and t1 demand is lost.
    result = play(
        _scripted([6, 0, 3, 0]), [3, 5, 2, 4], [4], LeadTimeModel("L2", 2), 1.0, 1.0, np.random.default_rng(0)
    )
    assert result.reward == pytest.approx(0 + 0 + (2 - 4) + 4)
    assert (result.sales, result.lost, result.holding, result.ordered, result.never_arrived) == (6, 8, 4, 9, 0)
    assert Scripted.seen[2][1] == [(6.0, 2)]  # still outstanding when period 2 decides
    assert Scripted.seen[3][1] == [(3.0, 4)]
    assert Scripted.seen[3][0] == 4.0


def test_lost_orders_never_arrive_and_stay_outstanding() -> None:
    supplier = LeadTimeModel("all lost", 1, lost_share=0.99999)
    result = play(_scripted([5, 5, 0]), [1, 1, 1], [1], supplier, 1.0, 0.1, np.random.default_rng(3))
    assert result.sales == 0 and result.never_arrived == 10
    assert Scripted.seen[2][1] == [(5.0, 1), (5.0, 2)]


def test_base_stock_formula_by_hand() -> None:
    policy = BaseStockPolicy([10, 12, 14], unit_profit=4, holding_cost=1, promised_lead_time=1)
    z = 0.8416212335729143  # z(0.8)
    target = 2 * 12 + z * math.sqrt(2) * 2.0  # sample sd of 10, 12, 14 is 2
    assert policy.target([10, 12, 14]) == pytest.approx(target)
    assert policy.order(5, [(10, 1)], [10, 12, 14]) == round(target - 15) == 11
    assert policy.order(30, [], [10, 12, 14]) == 0


@pytest.mark.parametrize("lead", [0, 1, 4])
@pytest.mark.parametrize("history", [[20, 22, 18, 25, 19], [0, 0, 0, 0, 0], [3, 0, 40, 1, 2]])
def test_policy_contract(lead: int, history: list[float]) -> None:
    for name, cls in POLICIES.items():
        policy = cls(history, 1.0, 0.25, lead)
        q = policy.order(0, [], history)
        assert type(q) is int and q >= 0, name
        q2 = policy.order(float(q), [], [*history, 7.0])
        assert type(q2) is int and q2 >= 0, name
    assert ReplenishmentPolicy([0, 0, 0, 0, 0], 1.0, 0.25, lead).order(0, [], [0, 0, 0, 0, 0]) == 0


def test_policy_rejects_bad_input_naming_the_field() -> None:
    with pytest.raises(InputError) as err:
        ReplenishmentPolicy([1, -2, 3], 1.0, 0.1, 0)
    assert err.value.field == "history"
    with pytest.raises(InputError) as err:
        ReplenishmentPolicy([1, 2, 3], 1.0, 0.1, -1)
    assert err.value.field == "promised_lead_time"
    policy = ReplenishmentPolicy([1, 2, 3], 1.0, 0.1, 0)
    with pytest.raises(InputError) as err:
        policy.order(-1, [], [1, 2, 3])
    assert err.value.field == "on_hand"
    with pytest.raises(InputError) as err:
        policy.order(0, [], [1, 2])
    assert err.value.field == "demand_so_far"


def test_policy_orders_only_for_the_period_its_order_can_reach() -> None:
    """With no stock and lead time 4, demand before the order arrives is lost anyway: the first order covers
    about one period, where base-stock orders for five."""
    history = [20, 21, 19, 20, 20]
    ours = ReplenishmentPolicy(history, 1.0, 0.25, 4).order(0, [], history)
    base = BaseStockPolicy(history, 1.0, 0.25, 4).order(0, [], history)
    assert 20 <= ours <= 30 and base >= 100


def _play_until(policy: ReplenishmentPolicy, history: list[float], periods: int) -> tuple[list[tuple[float, int]], int]:
    """Steady demand of 20; every order arrives on time except the first one, which is never delivered."""
    outstanding: list[tuple[float, int]] = []
    demand = list(history)
    first = 0
    for t in range(periods):
        q = policy.order(20.0, outstanding, demand)
        if t == 0:
            first = q
        if q > 0:
            outstanding.append((float(q), t + 2))
        outstanding = [(qty, due) for qty, due in outstanding if due > t or (due == 2 and qty == first)]
        demand.append(20.0)
    return outstanding, first


def test_policy_stops_counting_a_long_overdue_order() -> None:
    history = [20.0, 21.0, 19.0, 20.0, 20.0]
    policy = ReplenishmentPolicy(history, 1.0, 0.25, 2)
    outstanding, first = _play_until(policy, history, 12)
    assert (first, 2) in outstanding and first > 0
    demand = history + [20.0] * 12
    without = copy.deepcopy(policy).order(20.0, [o for o in outstanding if o != (first, 2)], demand)
    with_lost = copy.deepcopy(policy).order(20.0, outstanding, demand)
    # the order 10 periods overdue is not counted as stock on its way (counting it would cut the order by it)
    assert abs(with_lost - without) <= 2 < first
    supplier = _supplier(policy._delays, [10])
    assert supplier.still_arrives(10) == 0.0 and supplier.still_arrives(0) > 0.9
    base = BaseStockPolicy(history, 1.0, 0.25, 2)
    base_without = base.order(20.0, [o for o in outstanding if o != (first, 2)], demand)
    assert base.order(20.0, outstanding, demand) == max(0, base_without - first)  # base-stock still counts it


def test_families_are_seeded_and_distinct() -> None:
    for family in FAMILIES:
        a, b = generate_demand(family, 3), generate_demand(family, 3)
        assert a == b and len(a.history) == 5 and len(a.demand) == 50
        assert all(v >= 0 and v == int(v) for v in a.history + a.demand)
    assert generate_demand("stationary", 3).demand != generate_demand("stationary", 4).demand
    with pytest.raises(InputError) as err:
        generate_demand("chaotic", 1)
    assert err.value.field == "family" and "level_shift" in (err.value.allowed or [])


def test_beats_base_stock_on_level_shift_with_uncertain_lead_time() -> None:
    report = run_report([11, 12, 13, 14], families=["level_shift"], leads=["uncertain"], ratios=[0.8])
    [cell] = report.cells
    assert cell.ours > cell.base + 0.1
    assert cell.wins >= 3
    overall = report.overall()
    assert overall["total_gain"] == pytest.approx(cell.ours / cell.base - 1)


def test_parse_demand_csv_layouts() -> None:
    assert parse_demand_csv("demand\n1\n2.5\n") == [1.0, 2.5]
    assert parse_demand_csv("3\n4\n") == [3.0, 4.0]
    assert parse_demand_csv("\ufeffdate,store,Sales\n2026-01-01,1,5\n2026-01-02,1,6\n") == [5.0, 6.0]
    assert parse_demand_csv("qty\n7\n") == [7.0]  # a single column, whatever its name
    with pytest.raises(InputError) as err:
        parse_demand_csv("date,store\n2026-01-01,1\n")
    assert err.value.field == "demand"
    with pytest.raises(InputError) as err:
        parse_demand_csv("demand\n1\n-2\n")
    assert err.value.field == "demand" and err.value.row == 3


def _write(tmp_path: Path, text: str, name: str = "demand.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_cli_prints_both_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(5)
    csv = _write(
        tmp_path, "date,units\n" + "".join(f"2026-01-{i + 1:02d},{int(rng.integers(15, 25))}\n" for i in range(25))
    )
    code = main(
        [
            "simulate",
            "replenishment",
            "--demand",
            csv,
            "--lead-time",
            "2",
            "--profit",
            "1",
            "--holding",
            "0.25",
            "--lost-share",
            "0.2",
            "--seed",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "rimas" in out and "base_stock" in out and "normalized" in out
    assert "20 periods after 5 of history" in out


@pytest.mark.parametrize(
    ("text", "extra", "field"),
    [
        ("demand\n1\n2\nmany\n4\n5\n6\n", [], "line 4: demand"),
        ("demand\n1\n2\n-3\n4\n5\n6\n", [], "line 4: demand"),
        ("demand\n1\n2\n3\n", [], "demand: needs at least 6 rows"),
        ("date,store\n2026-01-01,1\n", [], "demand: missing column"),
        ("demand\n1\n2\n3\n4\n5\n6\n", ["--policy", "oracle"], "policy: unknown policy"),
        ("demand\n1\n2\n3\n4\n5\n6\n", ["--lost-share", "1.5"], "lost_share"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, extra: list[str], field: str
) -> None:
    csv = _write(tmp_path, text)
    code = main(
        ["simulate", "replenishment", "--demand", csv, "--lead-time", "1", "--profit", "1", "--holding", "0.1", *extra]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert field in err and "Traceback" not in err


def test_cli_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            "replenishment",
            "--demand",
            str(tmp_path / "nope.csv"),
            "--lead-time",
            "0",
            "--profit",
            "1",
            "--holding",
            "1",
        ]
    )
    assert code == 2
    assert "demand: file not found" in capsys.readouterr().err
