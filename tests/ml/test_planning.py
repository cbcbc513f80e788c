"""plan_item against hand-computed replenishment lines."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from ml.errors import InputError
from ml.planning import ItemPlanInput, PlanningCosts, plan_item

Z95 = 1.6448536269514722
Z90 = 1.2815515655446004
NO_EOQ = PlanningCosts(order_cost=0.0)  # EOQ 0: the need alone, no rounding toward it


def item(**overrides: object) -> ItemPlanInput:
    """Lead time 3 + review 7: P50 4 a day, P90 one standard deviation (1 unit) above it each day."""
    base = ItemPlanInput(
        sku=11,
        on_hand=10,
        on_order=5,
        p50=[4.0] * 10,
        p90=[4.0 + Z90] * 10,
        lead_time_days=3,
        review_days=7,
        unit_cost=10.0,
        unit_price=16.0,
        history_days=365,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_lead_time_zero_covers_the_review_period_only() -> None:
    # 7 days at P50 10, sd 2 a day: SS = z95 * sqrt(7 * 4); S = 70 + 8.704 = 78.70; position 20 -> 58.70 -> 59
    plan = plan_item(item(lead_time_days=0, on_hand=20, on_order=0, p50=[10.0] * 7, p90=[10 + 2 * Z90] * 7), NO_EOQ)
    assert plan.safety_stock == pytest.approx(Z95 * math.sqrt(28))
    assert plan.order_up_to == pytest.approx(70 + Z95 * math.sqrt(28))
    assert plan.lead_time_demand == 0.0
    assert plan.reorder_point == 0.0
    assert plan.order_qty == 59
    assert plan.eoq == 0.0


def test_lead_time_three_orders_up_to_the_protection_level() -> None:
    plan = plan_item(item(), NO_EOQ)
    assert plan.position == 15
    assert plan.lead_time_demand == pytest.approx(12)
    assert plan.protection_demand == pytest.approx(40)
    assert plan.demand_sd == pytest.approx(math.sqrt(10))
    assert plan.safety_stock == pytest.approx(Z95 * math.sqrt(10))  # 5.2015
    assert plan.reorder_point == pytest.approx(12 + Z95 * math.sqrt(3))  # 14.85: 15 is just above it
    assert plan.order_up_to == pytest.approx(45.2015, abs=1e-4)
    assert plan.order_qty == 31  # 45.2015 - 15 = 30.2 -> 31
    # P(N(40, sqrt 10) > 46) = 1 - Phi(1.8974) = 0.0289; without the order P(> 15) is about 1
    assert plan.stockout_risk == pytest.approx(0.0289, abs=1e-4)
    assert plan.stockout_risk_without_order == pytest.approx(1.0)
    assert not plan.short_history
    assert any("order 31" in line for line in plan.rationale)


def test_on_order_covering_the_need_orders_nothing() -> None:
    plan = plan_item(item(on_order=40))  # position 50 >= S 45.2, with the default costs too
    assert plan.order_qty == 0
    assert plan.stockout_risk == plan.stockout_risk_without_order
    assert any("no order" in line for line in plan.rationale)


def test_short_history_covers_p50_only_without_eoq_rounding() -> None:
    plan = plan_item(item(history_days=30), PlanningCosts(), min_history_days=56)
    assert plan.short_history
    assert plan.safety_stock == 0.0
    assert plan.order_up_to == pytest.approx(40)
    assert plan.order_qty == 25  # 40 - 15, EOQ (sqrt(2 * 1460 * 25 / 2.5) = 171) not applied
    assert plan.eoq == pytest.approx(math.sqrt(2 * 4 * 365 * 25 / 2.5))
    assert any("short history" in line for line in plan.rationale)


def test_eoq_rounding_adds_whole_review_periods_up_to_the_eoq() -> None:
    # lead 0, review 7, P50 = P90 = 10: need 70; EOQ = sqrt(2 * 3650 * 25 / 2.5) = 270.2;
    # +70 (extra holding 70 * 7 days * 2.5 / 365 = 3.36 < 25) -> 140, +70 (6.71) -> 210, 280 > EOQ: stop
    plan = plan_item(item(lead_time_days=0, on_hand=0, on_order=0, p50=[10.0] * 7, p90=[10.0] * 7))
    assert plan.eoq == pytest.approx(math.sqrt(73000))
    assert plan.order_qty == 210
    assert any("toward the EOQ" in line for line in plan.rationale)


def test_eoq_rounding_stops_when_holding_costs_more_than_an_order() -> None:
    # a huge annual demand lifts the EOQ; the j-th extra week costs 3.356 * j to hold: j = 7 (23.5) yes, 8 (26.8) no
    plan = plan_item(item(lead_time_days=0, on_hand=0, on_order=0, p50=[10.0] * 7, p90=[10.0] * 7, annual_demand=1e6))
    assert plan.order_qty == 70 * 8


def test_no_eoq_rounding_when_the_eoq_is_below_the_need() -> None:
    plan = plan_item(item(lead_time_days=0, on_hand=0, on_order=0, p50=[10.0] * 7, p90=[10.0] * 7, unit_cost=200.0))
    assert plan.eoq == pytest.approx(math.sqrt(3650))  # 60 < 70
    assert plan.order_qty == 70


def test_pack_size_rounds_up() -> None:
    assert plan_item(item(pack_size=12), NO_EOQ).order_qty == 36  # 30.2 -> 3 packs of 12


def test_extra_forecast_days_are_ignored() -> None:
    longer = item(p50=[4.0] * 10 + [100.0] * 5, p90=[4.0 + Z90] * 10 + [200.0] * 5)
    assert plan_item(longer, NO_EOQ).order_qty == plan_item(item(), NO_EOQ).order_qty


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"p50": [4.0] * 9, "p90": [5.0] * 9}, "p50"),
        ({"p90": [3.0] * 10}, "p90"),
        ({"lead_time_days": -1}, "lead_time_days"),
        ({"review_days": 0}, "review_days"),
        ({"on_hand": float("nan")}, "on_hand"),
        ({"unit_cost": 0.0}, "unit_cost"),
        ({"pack_size": 0}, "pack_size"),
    ],
)
def test_bad_input_names_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as err:
        plan_item(item(**overrides))
    assert err.value.field == field


def test_bad_costs_are_refused() -> None:
    with pytest.raises(InputError, match="service_level"):
        plan_item(item(), PlanningCosts(service_level=1.0))


def test_demand_lost_before_the_order_arrives_is_not_ordered_for() -> None:
    # nothing on hand, lead 3 at P50 4: those 12 units are lost whatever we order; the order covers the 7 days
    # after it arrives: 28 + z95 * sqrt(7) = 32.35 -> 33, where the order-up-to gap would be 45.2 -> 46
    plan = plan_item(item(on_hand=0, on_order=0), NO_EOQ)
    assert plan.order_up_to == pytest.approx(45.2015, abs=1e-4)
    assert plan.order_qty == 33
    assert any("runs out before the order arrives" in line for line in plan.rationale)


def test_the_lost_sales_rule_in_closed_form() -> None:
    from ml.replenishment import uncovered_demand_quantile as rule

    # stock to spare through the lead time: the order-up-to gap, quantile(D_L + D_C) - stock
    assert rule(100, 30, 5, 140, 12, 0.95) == pytest.approx(30 + 140 + Z95 * 13 - 100, abs=1e-3)
    # no stock: the cover period's own quantile; plenty of stock: nothing
    assert rule(0, 30, 5, 140, 12, 0.95) == pytest.approx(140 + Z95 * 12, abs=1e-3)
    assert rule(10_000, 30, 5, 140, 12, 0.95) == 0.0
    assert rule(50, 0, 0, 140, 12, 0.5) == pytest.approx(90, abs=1e-6)
    with pytest.raises(InputError) as info:
        rule(-1, 30, 5, 140, 12, 0.95)
    assert info.value.field == "stock"
