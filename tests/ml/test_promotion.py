"""Promotion maths: elasticity recovery on synthetic sales, economics by hand, the discount choice, the test design."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.errors import InputError
from ml.promotion import (
    PRIOR_ELASTICITY,
    Elasticity,
    choose_discount,
    estimate_elasticity,
    measurement_design,
    pooled_elasticity,
    promotion_economics,
)

WEEKDAY = np.exp(0.3 * np.array([-0.22, -0.30, -0.20, -0.08, 0.12, 0.45, 0.30]))


def _history(
    seed: int, elasticity: float, level: float = 40.0, days: int = 730, promo_rate: float = 0.6
) -> tuple[np.ndarray, np.ndarray, list[dt.date]]:
    """Weekly and yearly seasonality, a trend, gamma-Poisson noise, random promotions lifting by (1-d)^-e."""
    rng = np.random.default_rng(seed)
    dates = [dt.date(2023, 1, 2) + dt.timedelta(days=i) for i in range(days)]
    t = np.arange(days)
    base = level * WEEKDAY[[d.weekday() for d in dates]] * np.exp(0.2 * np.sin(2 * np.pi * t / 365.25) + 0.1 * t / 365)
    discount = np.zeros(days)
    for block in range(0, days, 42):
        if rng.random() < promo_rate:
            length = int(rng.integers(5, 15))
            start = block + int(rng.integers(0, 42 - length))
            discount[start : start + length] = 0.05 * int(rng.integers(1, 7))
    mu = base * (1 - discount) ** -elasticity
    units = rng.poisson(mu * rng.gamma(30.0, 1 / 30.0, days)).astype(float)
    return units, discount, dates


# ----------------------------------------------------------------------------------------------- elasticity


@pytest.mark.parametrize("true_e", [1.2, 2.5])
def test_item_elasticity_is_recovered(true_e: float) -> None:
    estimates = []
    for seed in range(5):
        units, discount, dates = _history(seed, true_e)
        est = estimate_elasticity(units, discount, dates)
        assert est.source == "item" and est.promo_days >= 7 and not est.clipped
        assert abs(est.value - true_e) < max(0.5, 3.5 * est.se)
        assert 0.03 < est.se < 0.4
        estimates.append(est.value)
    assert np.mean(estimates) == pytest.approx(true_e, abs=0.2)


def test_slow_movers_are_not_shrunk_and_dates_are_optional() -> None:
    values = []
    for seed in range(4):
        units, discount, _ = _history(100 + seed, 2.0, level=2.0)
        est = estimate_elasticity(units, discount)
        assert est.source == "item"
        values.append(est.value)
    assert np.mean(values) == pytest.approx(2.0, abs=0.35)


def test_few_promotions_fall_back_to_the_pooled_estimate_then_the_prior() -> None:
    per_item = [estimate_elasticity(*_history(seed, 2.0)) for seed in range(6)]
    pooled = pooled_elasticity(per_item)
    assert pooled.source == "pooled" and pooled.value == pytest.approx(2.0, abs=0.2)
    assert pooled.se < 0.25 and pooled.promo_days == sum(e.promo_days for e in per_item)
    units, discount, dates = _history(50, 2.0, promo_rate=0.0)
    discount[100:103] = 0.2  # three promoted days only
    fallback = estimate_elasticity(units, discount, dates, pooled=pooled)
    assert (fallback.source, fallback.value, fallback.promo_days) == ("pooled", pooled.value, 3)
    prior = estimate_elasticity(units, np.zeros_like(discount), dates)
    assert (prior.source, prior.value, prior.promo_days) == ("prior", PRIOR_ELASTICITY, 0)
    assert prior.se >= 1.0 and "prior" in prior.note


def test_pooling_is_precision_weighted() -> None:
    a = Elasticity(2.0, 0.1, 20, "item", False, 2.0, "")
    b = Elasticity(2.5, 1.0, 20, "item", False, 2.5, "")
    pooled = pooled_elasticity([a, b])  # Q = 0.25 < k - 1: no between-item variance
    assert pooled.value == pytest.approx((2.0 / 0.01 + 2.5 / 1.0) / (1 / 0.01 + 1 / 1.0))
    assert pooled.se == pytest.approx(math.sqrt(1 / (100 + 1)))
    spread = pooled_elasticity([a, Elasticity(4.0, 0.1, 20, "item", False, 4.0, "")])
    assert spread.value == pytest.approx(3.0) and spread.se > 1.0  # tau = sqrt(2 - 0.01): a new item may differ
    with pytest.raises(InputError) as info:
        pooled_elasticity([pooled])
    assert info.value.field == "estimates"


def test_implausible_estimates_are_clipped_and_say_so() -> None:
    units, discount, dates = _history(3, 0.0)
    units = np.where(discount > 0, np.floor(units * 0.3), units)  # promotions that cut sales
    est = estimate_elasticity(units, discount, dates)
    assert est.source == "item" and est.value == 0.0 and est.clipped and est.raw is not None and est.raw < 0
    assert "clipped" in est.note


def test_bad_history_names_the_field() -> None:
    with pytest.raises(InputError) as info:
        estimate_elasticity([1.0, 2.0], [0.0, 1.0])
    assert info.value.field == "discount"
    with pytest.raises(InputError) as info:
        estimate_elasticity([1.0, 2.0], [0.0])
    assert info.value.field == "discount"
    with pytest.raises(InputError) as info:
        estimate_elasticity([1.0, 2.0], [0.0, 0.1], [dt.date(2024, 1, 1)] * 2)
    assert info.value.field == "dates"


# ----------------------------------------------------------------------------------------------- economics


def test_economics_by_hand() -> None:
    econ = promotion_economics(
        unit_price=10,
        unit_cost=6,
        baseline_units=100,
        discount=0.1,
        elasticity=2.0,
        promo_days=10,
        horizon_days=28,
        available_units=1000,
        excess_units=50,
        holding_cost_per_unit_day=0.01,
        min_margin=0.3,
    )
    lift = 0.9**-2
    assert econ.expected_lift == pytest.approx(lift - 1)
    assert econ.incremental_units == pytest.approx(100 * (lift - 1))
    assert econ.discounted_price == pytest.approx(9.0) and econ.margin_per_unit == pytest.approx(3.0)
    assert econ.margin_given_up == pytest.approx(100.0)
    assert econ.margin_impact == pytest.approx(100 * (lift - 1) * 3 - 100)
    assert econ.holding_cost_saved == pytest.approx(100 * (lift - 1) * 0.01 * (28 - 5))
    assert econ.net_benefit == pytest.approx(econ.margin_impact + econ.holding_cost_saved)
    assert econ.margin_pct == pytest.approx(1 / 3) and econ.margin_ok and not econ.capped_by_stock


def test_the_lift_cannot_sell_stock_that_is_not_there() -> None:
    econ = promotion_economics(
        unit_price=10,
        unit_cost=6,
        baseline_units=100,
        discount=0.1,
        elasticity=2.0,
        promo_days=10,
        horizon_days=28,
        available_units=110,
        excess_units=5,
        holding_cost_per_unit_day=0.01,
    )
    assert econ.promo_units_sold == 110 and econ.incremental_units == pytest.approx(10) and econ.capped_by_stock
    assert econ.cleared_excess_units == 5
    short = promotion_economics(
        unit_price=10,
        unit_cost=6,
        baseline_units=100,
        discount=0.1,
        elasticity=2.0,
        promo_days=10,
        horizon_days=28,
        available_units=60,
    )
    assert short.incremental_units == 0 and short.margin_given_up == pytest.approx(60.0)


def test_choose_discount_picks_the_best_paying_step() -> None:
    common: dict[str, Any] = {
        "unit_price": 10.0,
        "unit_cost": 3.0,
        "baseline_units": 100.0,
        "elasticity": 3.0,
        "promo_days": 14,
        "horizon_days": 28,
        "available_units": 500.0,
        "excess_units": 200.0,
    }
    choice = choose_discount(max_discount=0.2, min_margin=0.15, **common)
    assert choice.discount == 0.2 and choice.economics is not None and choice.economics.net_benefit > 0
    assert [round(c.discount, 2) for c in choice.candidates] == [0.05, 0.1, 0.15, 0.2]
    assert choice.economics.net_benefit == max(c.net_benefit for c in choice.candidates)
    assert "excess stock" in choice.reason and "20 % off" in choice.reason
    capped = choose_discount(max_discount=0.3, min_margin=0.61, **common)
    assert capped.discount == 0.2 and "25 % would leave margin 60 % < 61 %" in capped.reason
    assert capped.economics is not None and capped.economics.margin_pct >= 0.61


def test_no_discount_without_excess_or_when_it_breaks_the_margin() -> None:
    common: dict[str, Any] = {
        "unit_price": 10.0,
        "baseline_units": 100.0,
        "elasticity": 3.0,
        "promo_days": 14,
        "horizon_days": 28,
    }
    none = choose_discount(max_discount=0.3, min_margin=0.15, unit_cost=3.0, available_units=150.0, **common)
    assert none.discount == 0.0 and none.economics is None and not none.eligible
    assert none.reason.startswith("no excess stock") and "give away margin" in none.reason
    thin = choose_discount(
        max_discount=0.3, min_margin=0.15, unit_cost=8.2, available_units=500.0, excess_units=300.0, **common
    )
    assert thin.discount == 0.0 and thin.reason == "discount 5 % would leave margin 13.7 % < 15 %: no promotion"
    unpaid = choose_discount(
        max_discount=0.3,
        min_margin=0.0,
        unit_cost=6.0,
        available_units=500.0,
        excess_units=300.0,
        **{**common, "elasticity": 0.5},
    )
    assert unpaid.discount == 0.0 and "no discount pays" in unpaid.reason


@settings(max_examples=200, deadline=None)
@given(
    price=st.floats(0.5, 200.0),
    cost_share=st.floats(0.0, 0.99),
    base=st.floats(0.0, 500.0),
    elasticity=st.floats(0.0, 6.0),
    promo_days=st.integers(1, 28),
    extra_days=st.integers(0, 60),
    available=st.floats(0.0, 3000.0),
    excess=st.floats(0.0, 1000.0),
    hold=st.floats(0.0, 0.5),
    max_discount=st.floats(0.0, 0.6),
    min_margin=st.floats(0.0, 0.6),
)
def test_choice_never_breaks_the_limits(
    price: float,
    cost_share: float,
    base: float,
    elasticity: float,
    promo_days: int,
    extra_days: int,
    available: float,
    excess: float,
    hold: float,
    max_discount: float,
    min_margin: float,
) -> None:
    choice = choose_discount(
        max_discount=max_discount,
        min_margin=min_margin,
        unit_price=price,
        unit_cost=price * cost_share,
        baseline_units=base,
        elasticity=elasticity,
        promo_days=promo_days,
        horizon_days=promo_days + extra_days,
        available_units=available,
        excess_units=excess,
        holding_cost_per_unit_day=hold,
    )
    assert 0.0 <= choice.discount <= max_discount
    if choice.discount > 0:
        sale = price * (1 - choice.discount)
        assert (sale - price * cost_share) / sale >= min_margin - 1e-9
        assert choice.economics is not None and choice.economics.net_benefit > 0 and choice.eligible
        assert choice.economics.promo_units_sold <= available + 1e-9
    else:
        assert choice.reason


# ----------------------------------------------------------------------------------------------- measurement


def test_measurement_design_by_hand() -> None:
    daily = [10.0, 12.0, 8.0, 10.0] * 7
    var = 56 / 27
    z = 1.959963984540054 + 0.8416212335729143
    design = measurement_design(daily, 0.1, promo_days=14)
    assert design.mean_daily == pytest.approx(10.0) and design.var_daily == pytest.approx(var)
    assert design.units_per_arm_needed == math.ceil(z * z * 2 * var / 1.0**2) == 33
    assert design.min_detectable_lift == pytest.approx(z * math.sqrt(2 * var / 14) / 10)
    assert not design.detectable and design.days_needed == 33 and design.stores_needed == 6
    assert "cannot detect" in design.message and "33" in design.message
    stores = measurement_design(daily, 0.1, promo_days=14, n_stores=6)
    assert (stores.promo_stores, stores.holdout_stores) == (3, 3) and stores.detectable
    assert stores.min_detectable_lift == pytest.approx(z * math.sqrt(2 * var / 42) / 10)


def test_longer_promotions_detect_smaller_lifts() -> None:
    daily = np.random.default_rng(1).poisson(20, 112).astype(float)
    mdl = [measurement_design(daily, 0.2, promo_days=d).min_detectable_lift for d in (3, 7, 14, 28)]
    values = [m for m in mdl if m is not None]
    assert len(values) == 4 and all(a > b for a, b in itertools.pairwise(values))
    assert measurement_design(daily, 0.5, promo_days=28).detectable


def test_degenerate_histories_say_why() -> None:
    short = measurement_design([5.0] * 5, 0.2, promo_days=7)
    assert not short.detectable and short.min_detectable_lift is None and "only 5" in short.message
    zero = measurement_design([0.0] * 30, 0.2, promo_days=7)
    assert not zero.detectable and "sold nothing" in zero.message
    flat = measurement_design([4.0] * 30, 0.2, promo_days=7)
    assert flat.detectable and flat.min_detectable_lift == 0.0 and "constant" in flat.message
    with pytest.raises(InputError) as info:
        measurement_design([1.0] * 30, 0.2, promo_days=0)
    assert info.value.field == "promo_days"
