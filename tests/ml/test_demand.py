"""Demand forecaster: panel, no look-ahead, planned promotions, baselines, metrics, one-pass forecasts,
accuracy vs the noise floor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml.demand.baselines import same_weekday_last_year, seasonal_naive
from ml.demand.features import CALENDAR, FEATURE_NAMES, PROMOTION, build_features
from ml.demand.model import DemandModel
from ml.demand.panel import Panel, build_panel
from ml.demand.train import DemandTrainConfig, backtest_panel, train_demand
from ml.errors import InputError
from ml.metrics import coverage, smape, wape


def _panel(values: np.ndarray, discount: np.ndarray | None = None) -> Panel:
    keys = pd.DataFrame({"store": np.ones(len(values), dtype=np.int64), "item": np.arange(len(values))})
    calendar = discount if discount is not None else np.zeros((len(values), 0))
    return Panel(keys=keys, start=pd.Timestamp("2024-01-01"), values=values.astype(float), discount=calendar)


def _random_promotions(rng: np.random.Generator, shape: tuple[int, int], share: float = 0.15) -> np.ndarray:
    """A discount calendar with week-long promotions of 10-30 % on about ``share`` of the days."""
    out = np.zeros(shape)
    for s in range(shape[0]):
        for start in np.flatnonzero(rng.random(shape[1]) < share / 7):
            out[s, start:start + 7] = rng.choice([0.1, 0.2, 0.3])
    return out


def test_panel_fills_gaps_with_zero_and_leaves_days_before_a_series_unknown() -> None:
    frame = pd.DataFrame(
        {
            "date": ["2024-01-01", "2024-01-04", "2024-01-03"],
            "store": [1, 1, 2],
            "item": [7, 7, 7],
            "sales": [5, 2, 3],
        }
    )
    panel = build_panel(frame)
    assert panel.keys.to_dict("list") == {"store": [1, 2], "item": [7, 7]}
    np.testing.assert_array_equal(panel.values[0], [5, 0, 0, 2])
    assert np.isnan(panel.values[1, :2]).all()
    np.testing.assert_array_equal(panel.values[1, 2:], [3, 0])


def test_features_never_read_sales_closer_than_the_horizon() -> None:
    rng = np.random.default_rng(0)
    values = rng.poisson(10, size=(3, 800)).astype(float)
    discount = _random_promotions(rng, (3, 800 + 14))  # promotions planned past the history's end
    horizon = 14
    for t in (500, 650, 799 + horizon):  # the last one is a forecast day after the panel
        before = build_features(_panel(values, discount), np.array([t]), horizon)
        tampered = values.copy()
        tampered[:, t - horizon + 1:] = 1e6
        after = build_features(_panel(tampered, discount), np.array([t]), horizon)
        np.testing.assert_array_equal(before.matrix, after.matrix)
        np.testing.assert_array_equal(before.scale, after.scale)


def test_the_target_days_planned_discount_moves_only_the_promotion_features() -> None:
    rng = np.random.default_rng(1)
    discount = _random_promotions(rng, (4, 600))
    discount[:, 540:560] = 0.0
    values = rng.poisson(20 * (1 - discount) ** -2.0).astype(float)  # past promotions sold more
    t = np.array([550])
    before = build_features(_panel(values, discount), t, 14)
    planned = discount.copy()
    planned[:, 550] = 0.25
    after = build_features(_panel(values, planned), t, 14)
    promo_cols = [FEATURE_NAMES.index(name) for name in PROMOTION]
    other = [i for i in range(len(FEATURE_NAMES)) if i not in promo_cols]
    np.testing.assert_array_equal(before.matrix[:, other], after.matrix[:, other])
    assert (before.matrix[:, FEATURE_NAMES.index("discount")] == 0).all()
    assert (after.matrix[:, FEATURE_NAMES.index("discount")] == 0.25).all()
    assert (after.matrix[:, FEATURE_NAMES.index("promo_day")] == 1).all()
    assert (after.matrix[:, FEATURE_NAMES.index("expected_lift")] > 1).all()
    assert (after.scale > before.scale).all()  # the forecast is scaled up by the expected lift


def test_without_a_discount_column_the_promotion_features_are_inert() -> None:
    values = np.random.default_rng(2).poisson(10, size=(2, 400)).astype(float)
    block = build_features(_panel(values), np.arange(380, 400), 14)
    features = dict(zip(FEATURE_NAMES, block.matrix.T, strict=True))
    assert (features["discount"] == 0).all() and (features["promo_day"] == 0).all()
    assert (features["expected_lift"] == 1).all() and np.isnan(features["promo_elasticity"]).all()
    np.testing.assert_array_equal(block.scale, block.level)
    assert set(CALENDAR) < set(FEATURE_NAMES)


def test_sales_with_a_bad_discount_are_rejected_naming_the_field() -> None:
    frame = pd.DataFrame({"date": ["2024-01-01", "2024-01-02"], "store_id": [1, 1], "sku": [7, 7],
                          "units": [3, 4], "discount": [0.1, 1.5]})
    with pytest.raises(InputError, match="fraction") as info:
        build_panel(frame)
    assert info.value.field == "discount" and info.value.row == 2
    panel = build_panel(frame.assign(discount=[0.1, None]))
    np.testing.assert_array_equal(panel.discount, [[0.1, 0.0]])


def test_seasonal_naive_repeats_the_last_week_and_last_year_looks_back_52_weeks() -> None:
    values = np.arange(400, dtype=float)[None, :]
    panel = _panel(values)
    # last day index 399: k = 1..7 -> 393..399, k = 8 -> 393 again
    np.testing.assert_array_equal(seasonal_naive(panel, 8)[0], [393, 394, 395, 396, 397, 398, 399, 393])
    np.testing.assert_array_equal(same_weekday_last_year(panel, 3)[0], [36, 37, 38])
    short = _panel(np.arange(30, dtype=float)[None, :])
    np.testing.assert_array_equal(same_weekday_last_year(short, 2)[0], seasonal_naive(short, 2)[0])


def test_forecast_metrics_match_hand_computed_values() -> None:
    assert smape([0, 1, 2], [0, 1, 4]) == pytest.approx(200 / 3 * (2 / 6))
    assert smape([0, 0], [0, 0]) == 0.0
    assert smape([0], [3]) == pytest.approx(200.0)
    assert wape([10, 0, 10], [12, 1, 7]) == pytest.approx(100 * 6 / 20)
    assert coverage([1, 5, 9, 10], [2, 5, 8, 20]) == pytest.approx(0.75)


def test_trained_model_forecasts_a_whole_horizon_in_one_pass(demand_models_dir: Path, sales: pd.DataFrame) -> None:
    # The model was trained with discounts; the history here is the public layout without any.
    assert "discount" not in sales.columns
    model = DemandModel().load(demand_models_dir)
    assert model.horizon == 14
    fc = model.forecast(sales, 14)
    n_series = sales.groupby(["store", "item"]).ngroups
    assert len(fc) == n_series * 14
    assert list(fc.columns) == ["date", "store", "item", "p50", "p90", "model_version"]
    first = sales["date"].max() + pd.Timedelta(days=1)
    assert sorted(fc["date"].unique()) == list(pd.date_range(first, periods=14))
    assert (fc["p50"] >= 0).all() and (fc["p90"] >= fc["p50"]).all()
    assert (fc["model_version"] == model.model_version).all()
    shorter = model.forecast(sales.rename(columns={"store": "store_id", "item": "sku", "sales": "units"}), 3)
    assert len(shorter) == n_series * 3


def test_planned_discounts_raise_the_p50_on_promoted_days_only(demand_models_dir: Path,
                                                               promo_sales: pd.DataFrame) -> None:
    model = DemandModel().load(demand_models_dir)
    plain = model.forecast(promo_sales, 14)
    first = promo_sales["date"].max() + pd.Timedelta(days=1)
    days = pd.date_range(first + pd.Timedelta(days=3), periods=5)
    keys = promo_sales[["store", "item"]].drop_duplicates()
    daily = keys.merge(pd.DataFrame({"date": days}), how="cross").assign(discount=0.2)
    planned = model.forecast(promo_sales, 14, daily)
    on = planned["date"].isin(days).to_numpy()
    pd.testing.assert_frame_equal(planned[~on], plain[~on])
    assert planned.loc[on, "p50"].sum() > 1.2 * plain.loc[on, "p50"].sum()
    assert (planned.loc[on, "p50"].to_numpy() >= plain.loc[on, "p50"].to_numpy()).mean() > 0.9
    assert (planned["p90"] >= planned["p50"]).all()
    # The same plan as promotion windows (the promotions table's layout) gives the same forecast.
    windows = keys.rename(columns={"store": "store_id", "item": "sku"}).assign(
        discount=0.2, starts_on=days[0], ends_on=days[-1])
    pd.testing.assert_frame_equal(model.forecast(promo_sales, 14, windows), planned)


def test_backtest_knows_the_held_out_discounts_but_not_the_held_out_sales(promo_sales: pd.DataFrame) -> None:
    panel = build_panel(promo_sales)
    horizon = 14
    cfg = DemandTrainConfig(horizon=horizon, max_rounds=25, train_days=150)
    metrics, _, detail = backtest_panel(panel, cfg)
    promoted = detail["discount"].to_numpy() > 0
    assert promoted.any() and metrics["promotions"]["planned_discounts_known"]
    assert metrics["promotions"]["holdout_promoted_share"] == pytest.approx(promoted.mean())

    tampered = panel.values.copy()
    tampered[:, -horizon:] = tampered[:, -horizon:] * 7 + 50
    _, _, again = backtest_panel(Panel(panel.keys, panel.start, tampered, panel.discount), cfg)
    pd.testing.assert_series_equal(again["p50"], detail["p50"])
    pd.testing.assert_series_equal(again["p90"], detail["p90"])
    assert not again["actual"].equals(detail["actual"])

    unplanned = panel.discount.copy()
    unplanned[:, -horizon:] = 0.0
    _, _, blind = backtest_panel(panel.with_discounts(unplanned), cfg)
    np.testing.assert_array_equal(blind["p50"].to_numpy()[~promoted], detail["p50"].to_numpy()[~promoted])
    assert detail["p50"][promoted].sum() > 1.1 * blind["p50"][promoted].sum()


def test_public_layout_without_discounts_trains_and_beats_seasonal_naive(sales: pd.DataFrame) -> None:
    trained = train_demand(sales, DemandTrainConfig(horizon=7, max_rounds=40, train_days=150))
    bt = trained.metrics["backtest"]
    assert bt["promotions"] == {"planned_discounts_known": False, "holdout_promoted_share": 0.0}
    assert bt["model"]["smape"] < bt["seasonal_naive"]["smape"]
    fc = trained.models.forecast(build_panel(sales), 7)
    assert np.isfinite(fc["p50"]).all() and (fc["p50"] >= 0).all()


@pytest.mark.parametrize("horizon", [0, 15, -1])
def test_horizon_outside_the_model_range_is_rejected(demand_models_dir: Path, sales: pd.DataFrame,
                                                     horizon: int) -> None:
    with pytest.raises(InputError, match=r"1\.\.14") as info:
        DemandModel().load(demand_models_dir).forecast(sales, horizon)
    assert info.value.field == "horizon"


def test_demand_card_reports_backtest_against_both_baselines(demand_models_dir: Path) -> None:
    model = DemandModel().load(demand_models_dir)
    bt = model.metadata["metrics"]["backtest"]
    assert {"model", "seasonal_naive", "same_weekday_last_year"} <= set(bt)
    assert bt["model"]["smape"] < bt["seasonal_naive"]["smape"]
    assert model.ref is not None
    card = (model.ref.path / "model_card.md").read_text()
    assert f"{bt['model']['smape']:.4f}" in card and "same weekday last year" in card


def test_too_little_history_is_a_clear_error(sales: pd.DataFrame) -> None:
    recent = sales[sales["date"] > sales["date"].max() - pd.Timedelta(days=60)]
    with pytest.raises(InputError, match="needs at least") as info:
        train_demand(recent, DemandTrainConfig(horizon=28))
    assert info.value.field == "history"


def _poisson_retail(
    seed: int = 0, n_series: int = 16, days: int = 1095, elasticity: float | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Series with weekly and yearly seasonality, a trend and Poisson noise; returns (sales, true means).

    With ``elasticity``, week-long promotions on about 15 % of the days lift demand by
    ``(1 - discount) ** -elasticity`` and the frame gets their ``discount`` column.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2015-01-01", periods=days)
    weekly = np.array([0.8, 0.95, 0.95, 1.0, 1.05, 1.15, 1.2])[dates.day_of_week.to_numpy()]
    yearly = 1 + 0.25 * np.sin(2 * np.pi * (dates.day_of_year.to_numpy() - 80) / 365.25)
    trend = 1 + 0.1 * np.arange(days) / 365
    base = rng.uniform(15, 60, n_series)
    mu = base[:, None] * (weekly * yearly * trend)[None, :]
    discount = _random_promotions(rng, mu.shape) if elasticity is not None else np.zeros(mu.shape)
    mu = mu * (1 - discount) ** -(elasticity or 0.0)
    frame = pd.DataFrame(
        {
            "date": np.tile(dates, n_series),
            "store": 1,
            "item": np.repeat(np.arange(n_series), days),
            "sales": rng.poisson(mu).reshape(-1),
        }
    )
    if elasticity is not None:
        frame["discount"] = discount.reshape(-1)
    return frame, mu


def test_backtest_gets_close_to_the_noise_floor_and_beats_both_baselines() -> None:
    frame, mu = _poisson_retail()
    horizon = 28
    metrics, _, detail = backtest_panel(build_panel(frame), DemandTrainConfig(horizon=horizon, max_rounds=200))
    actual = detail["actual"].to_numpy().reshape(len(mu), horizon)
    oracle = smape(actual, stats.poisson.median(mu[:, -horizon:]))  # knows the true mean of every day
    model = metrics["model"]["smape"]
    assert model <= 1.05 * oracle
    assert model < 0.85 * metrics["seasonal_naive"]["smape"]
    assert model < 0.85 * metrics["same_weekday_last_year"]["smape"]
    assert 0.85 <= metrics["model"]["p90_coverage"] <= 0.95


def test_known_promotions_keep_the_forecast_near_the_noise_floor_on_promoted_days() -> None:
    frame, mu = _poisson_retail(seed=3, elasticity=2.5)
    horizon = 28
    cfg = DemandTrainConfig(horizon=horizon, max_rounds=200)
    metrics, _, detail = backtest_panel(build_panel(frame), cfg)
    _, _, blind = backtest_panel(build_panel(frame.drop(columns="discount")), cfg)
    actual = detail["actual"].to_numpy()
    oracle = stats.poisson.median(mu[:, -horizon:]).reshape(-1)
    on = detail["discount"].to_numpy() > 0
    assert on.mean() > 0.05
    model_on = smape(actual[on], detail["p50"].to_numpy()[on])
    assert model_on <= 1.1 * smape(actual[on], oracle[on])
    assert model_on < 0.8 * smape(actual[on], blind["p50"].to_numpy()[on])
    assert metrics["model"]["smape"] < 0.65 * metrics["seasonal_naive"]["smape"]  # the 35 % target
