"""Inventory maths against hand-computed values."""

from __future__ import annotations

import math

import pytest

from ml.errors import InputError
from ml.inventory import (
    abc_classify,
    eoq,
    reorder_point,
    reorder_quantity,
    safety_stock,
    safety_stock_from_quantiles,
    z_value,
)

Z95 = 1.6448536269514722
Z90 = 1.2815515655446004


def test_z_value_of_common_service_levels() -> None:
    assert z_value(0.95) == pytest.approx(Z95)
    assert z_value(0.5) == pytest.approx(0.0)
    with pytest.raises(InputError, match="service_level"):
        z_value(1.0)


def test_safety_stock_with_demand_variation_only() -> None:
    # z(0.95) * sqrt(9 days) * 10 units = 1.64485 * 3 * 10
    assert safety_stock(10, 9, 0.95) == pytest.approx(49.3456, abs=1e-4)


def test_safety_stock_with_lead_time_variation() -> None:
    # sqrt(4 * 5^2 + 20^2 * 1^2) = sqrt(100 + 400) = 22.3607; times z(0.95)
    assert safety_stock(5, 4, 0.95, mean_daily_demand=20, lead_time_std=1) == pytest.approx(Z95 * math.sqrt(500))


def test_safety_stock_from_p50_p90_forecasts() -> None:
    # each day: sd = (p90 - p50) / z(0.90) = 12.8155 / 1.28155 = 10; 4 days -> sqrt(4 * 100) = 20
    spread = 10 * Z90
    ss = safety_stock_from_quantiles([30] * 4, [30 + spread] * 4, 0.95)
    assert ss == pytest.approx(Z95 * 20)
    with pytest.raises(InputError, match="below P50"):
        safety_stock_from_quantiles([5], [4])


def test_reorder_point_and_eoq() -> None:
    assert reorder_point(12, 5, 20) == pytest.approx(80.0)
    # sqrt(2 * 1200 * 50 / 6) = sqrt(20000) = 141.42
    assert eoq(1200, 50, 6) == pytest.approx(141.4214, abs=1e-4)
    with pytest.raises(InputError, match="holding_cost"):
        eoq(1200, 50, 0)
    with pytest.raises(InputError, match="annual_demand"):
        eoq(-1, 50, 6)


def test_reorder_quantity_orders_only_at_or_below_the_reorder_point() -> None:
    assert reorder_quantity(81, 80, 141) == 0.0
    assert reorder_quantity(80, 80, 141) == 141.0
    assert reorder_quantity(-100, 80, 141) == 180.0  # backorders: at least back up to the reorder point


def test_abc_classification_by_cumulative_value_share() -> None:
    values = {"a": 500, "b": 300, "c": 100, "d": 60, "e": 40, "f": 0}
    # shares before each item: a 0 %, b 50 %, c 80 %, d 90 %, e 96 %
    assert abc_classify(values) == {"a": "A", "b": "A", "c": "B", "d": "B", "e": "C", "f": "C"}
    assert abc_classify({"only": 10}) == {"only": "A"}
    assert abc_classify({}) == {}
    with pytest.raises(InputError, match="a_share"):
        abc_classify(values, a_share=0.9, b_share=0.8)
