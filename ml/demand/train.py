"""Training and backtesting the demand forecaster.

One global LightGBM model per quantile (P50 and P90, pinball loss) over all (store, item) series, with the
features of :mod:`ml.demand.features` for a fixed horizon ``H``. Training:

1. backtest: hold out the last ``H`` days; fit on the days before (early stopping on the ``H`` days just
   before the holdout), forecast the holdout in one pass and score it (SMAPE, WAPE, P90 coverage) against
   the seasonal-naive and same-weekday-last-year baselines. The forecast knows the held-out days' discounts
   (promotions are planned ahead; the sales data's ``discount`` column stands in for that plan) but none of
   their sales; the baselines use sales only;
2. final model: refit on all days with the backtest's number of rounds, so the stored model has seen the
   most recent data. Its P50 booster's feature importance (share of split gain) is recorded with the metrics.

Only the most recent ``train_days`` target days are used (the features reach back a year from each of
them), and the rows are capped at ``max_rows`` by a seeded random sample, to bound training time.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.demand.baselines import same_weekday_last_year, seasonal_naive
from ml.demand.features import FEATURE_NAMES, build_features
from ml.demand.panel import Panel, build_panel, check_sales_frame, panel_to_frame
from ml.errors import InputError
from ml.lgbm import gain_importance, tree_params
from ml.metrics import coverage, smape, wape
from ml.progress import ProgressFactory, silent
from ml.registry import data_fingerprint

log = logging.getLogger(__name__)

QUANTILES = {"p50": 0.5, "p90": 0.9}
MAX_HORIZON = 182


@dataclass
class DemandTrainConfig:
    """Procedure and LightGBM settings (defaults: ~500 series x 3 years in well under a minute)."""

    horizon: int = 28
    train_days: int = 364
    max_rows: int | None = 150_000
    learning_rate: float = 0.08
    num_leaves: int = 31
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_rounds: int = 400
    early_stopping_rounds: int = 30
    seed: int = 7
    num_threads: int = 1
    blind_history_share: float = 0.15
    """Share of the series whose training rows are built as if their past discounts were unknown (when
    the data has promotions), so that a plan for the forecast days still lifts a history without discounts."""

    def lgb_params(self, alpha: float) -> dict[str, Any]:
        return tree_params(self, objective="quantile", alpha=alpha, metric="quantile")


@dataclass
class QuantileModels:
    """One booster per quantile name, for one horizon."""

    boosters: dict[str, lgb.Booster]
    horizon: int
    integer: bool = False

    def forecast(self, panel: Panel, steps: int) -> dict[str, np.ndarray]:
        """(series x steps) forecasts for the ``steps`` days after the panel's last day, per quantile."""
        if not 1 <= steps <= self.horizon:
            raise InputError(f"horizon {steps} is outside 1..{self.horizon} (the model's horizon)",
                             field="horizon")
        offsets = np.arange(panel.n_days, panel.n_days + steps)
        block = build_features(panel, offsets, self.horizon)
        out: dict[str, np.ndarray] = {}
        for name, booster in self.boosters.items():
            scaled = np.asarray(booster.predict(block.matrix))
            out[name] = np.maximum(scaled * block.scale, 0.0).reshape(len(panel.keys), steps)
        if self.integer:  # quantiles of whole-unit sales are whole numbers
            out = {k: np.round(v) for k, v in out.items()}
        if "p50" in out and "p90" in out:
            out["p90"] = np.maximum(out["p90"], out["p50"])
        return out


@dataclass
class TrainedDemand:
    models: QuantileModels
    metrics: dict[str, Any]
    data: dict[str, Any]
    config: DemandTrainConfig
    rounds: dict[str, int] = field(default_factory=dict)


def check_horizon(horizon: int) -> int:
    if not isinstance(horizon, int | np.integer) or not 1 <= int(horizon) <= MAX_HORIZON:
        raise InputError(f"horizon must be a whole number of days in 1..{MAX_HORIZON}, got {horizon!r}",
                         field="horizon")
    return int(horizon)


def min_history_days(horizon: int) -> int:
    """Days of history needed to train: a validation window, a holdout window and 8 weeks of targets."""
    return 2 * horizon + 56


def fit_quantiles(
    panel: Panel,
    cfg: DemandTrainConfig,
    *,
    rounds: dict[str, int] | None = None,
    progress: ProgressFactory = silent,
) -> tuple[QuantileModels, dict[str, int]]:
    """Fit the quantile boosters on ``panel``.

    Without ``rounds``: the last ``horizon`` days are the early-stopping window, earlier days the training
    targets. With ``rounds``: all days are training targets and each booster runs that many rounds.
    """
    H = cfg.horizon
    T = panel.n_days
    end = T if rounds else T - H
    train_off = np.arange(max(end - cfg.train_days, 0), end)
    X, y = _rows(panel, train_off, H, blind_share=cfg.blind_history_share, seed=cfg.seed)
    X, y = _cap(X, y, cfg)
    train_set = lgb.Dataset(X, label=y, feature_name=list(FEATURE_NAMES), free_raw_data=False)
    valid_set = None
    if not rounds:
        Xv, yv = _rows(panel, np.arange(T - H, T), H)
        valid_set = lgb.Dataset(Xv, label=yv, reference=train_set)
    boosters: dict[str, lgb.Booster] = {}
    used: dict[str, int] = {}
    for name, alpha in QUANTILES.items():
        bar = progress(f"demand: fit {name}", rounds[name] if rounds else cfg.max_rounds)

        def tick(_env: Any, bar: Any = bar) -> None:
            bar.update()

        callbacks: list[Any] = [tick]
        if valid_set is not None:
            callbacks.append(lgb.early_stopping(cfg.early_stopping_rounds, verbose=False))
            booster = lgb.train(cfg.lgb_params(alpha), train_set, num_boost_round=cfg.max_rounds,
                                valid_sets=[valid_set], callbacks=callbacks)
            used[name] = max(booster.best_iteration, 1)
        else:
            assert rounds is not None
            booster = lgb.train(cfg.lgb_params(alpha), train_set, num_boost_round=rounds[name], callbacks=callbacks)
            used[name] = rounds[name]
        bar.close()
        boosters[name] = booster
    known = panel.values[~np.isnan(panel.values)]
    integer = bool(known.size) and bool(np.all(known == np.round(known)))
    return QuantileModels(boosters=boosters, horizon=H, integer=integer), used


def _rows(
    panel: Panel, offsets: np.ndarray, horizon: int, *, blind_share: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix and scaled target of the known (series, day) cells at ``offsets``.

    With promotions in the panel and ``blind_share > 0``, a seeded random share of the series get the
    features of a history without discounts (see :func:`build_features`).
    """
    block = build_features(panel, offsets, horizon)
    matrix, scale = block.matrix, block.scale
    if blind_share > 0 and panel.has_promotions:
        blind = build_features(panel, offsets, horizon, history_discounts=False)
        picked = np.random.default_rng(seed).random(len(panel.keys)) < blind_share
        rows = np.repeat(picked, len(offsets))
        matrix = np.where(rows[:, None], blind.matrix, matrix)
        scale = np.where(rows, blind.scale, scale)
    target = panel.values[:, offsets].reshape(-1)
    keep = ~np.isnan(target)
    return matrix[keep], target[keep] / scale[keep]


def _cap(X: np.ndarray, y: np.ndarray, cfg: DemandTrainConfig) -> tuple[np.ndarray, np.ndarray]:
    if cfg.max_rows is None or len(y) <= cfg.max_rows:
        return X, y
    rng = np.random.default_rng(cfg.seed)
    keep = np.sort(rng.choice(len(y), size=cfg.max_rows, replace=False))
    return X[keep], y[keep]


def evaluate_forecasts(actual: np.ndarray, forecasts: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """SMAPE, WAPE (and P90 coverage where there is a P90) for each method, over all series and days."""
    a = actual.reshape(-1)
    known = ~np.isnan(a)
    out: dict[str, Any] = {}
    for method, fc in forecasts.items():
        point = fc["p50"].reshape(-1)[known]
        row: dict[str, Any] = {
            "smape": smape(a[known], point),
            "wape": wape(a[known], point),
            "mae": float(np.abs(point - a[known]).mean()),
            "bias_pct": float(100 * (point.sum() - a[known].sum()) / max(a[known].sum(), 1e-9)),
        }
        if "p90" in fc:
            row["p90_coverage"] = coverage(a[known], fc["p90"].reshape(-1)[known])
        out[method] = row
    base = out.get("seasonal_naive", {}).get("smape")
    model = out.get("model", {}).get("smape")
    if base and model is not None:
        out["smape_reduction_vs_seasonal_naive_pct"] = float(100 * (base - model) / base)
    return out


def backtest_panel(
    panel: Panel, cfg: DemandTrainConfig, *, progress: ProgressFactory = silent
) -> tuple[dict[str, Any], dict[str, int], pd.DataFrame]:
    """Hold out the last ``horizon`` days, train on the rest, score model and baselines on the holdout.

    Returns (metrics, best rounds per quantile, long frame of holdout forecasts and actuals).
    """
    H = cfg.horizon
    T = panel.n_days
    if min_history_days(H) > T:
        raise InputError(f"{T} days of history; a backtest with horizon {H} needs at least {min_history_days(H)}",
                         field="history")
    history = panel.head(T - H)
    models, rounds = fit_quantiles(history, cfg, progress=progress)
    fc = models.forecast(history, H)
    actual = panel.values[:, T - H:]
    forecasts = {
        "model": fc,
        "seasonal_naive": {"p50": seasonal_naive(history, H)},
        "same_weekday_last_year": {"p50": same_weekday_last_year(history, H)},
    }
    metrics = evaluate_forecasts(actual, forecasts)
    holdout_discount = panel.discount_at(np.arange(T - H, T))
    metrics["promotions"] = {
        "planned_discounts_known": panel.has_promotions,
        "holdout_promoted_share": float((holdout_discount > 0).mean()) if holdout_discount.size else 0.0,
    }
    metrics["horizon"] = H
    metrics["holdout_start"] = str(panel.dates(np.array([T - H]))[0].date())
    metrics["holdout_end"] = str(panel.last_date.date())
    metrics["series"] = len(panel.keys)
    offsets = np.arange(T - H, T)
    detail = panel_to_frame(panel, offsets, {
        "discount": holdout_discount, "actual": actual, "p50": fc["p50"], "p90": fc["p90"],
        "seasonal_naive": forecasts["seasonal_naive"]["p50"],
        "same_weekday_last_year": forecasts["same_weekday_last_year"]["p50"],
    })
    return metrics, rounds, detail


def train_demand(
    sales: pd.DataFrame,
    config: DemandTrainConfig | None = None,
    *,
    source: str = "unknown",
    progress: ProgressFactory = silent,
) -> TrainedDemand:
    """Backtest, then fit the final P50/P90 models on all of ``sales`` (``date, store, item, sales``, and
    optionally the day's ``discount``, from which the model learns the promotion lift)."""
    cfg = config or DemandTrainConfig()
    check_horizon(cfg.horizon)
    clean = check_sales_frame(sales)
    panel = build_panel(clean)
    metrics, rounds, _ = backtest_panel(panel, cfg, progress=progress)
    final_rounds = dict(rounds)  # same number of target days as in the backtest, shifted to the newest
    models, _ = fit_quantiles(panel, cfg, rounds=final_rounds, progress=progress)
    data = {
        "source": source,
        "rows": len(clean),
        "series": len(panel.keys),
        "stores": int(panel.keys["store"].nunique()),
        "items": int(panel.keys["item"].nunique()),
        "first_date": str(panel.start.date()),
        "last_date": str(panel.last_date.date()),
        "promoted_share": float((panel.discount_at(np.arange(panel.n_days)) > 0).mean()),
        "fingerprint": data_fingerprint(clean),
    }
    log.info("demand model: backtest SMAPE %.2f vs seasonal naive %.2f",
             metrics["model"]["smape"], metrics["seasonal_naive"]["smape"])
    importance = {"kind": "gain", "quantile": "p50",
                  "shares": gain_importance(models.boosters["p50"], FEATURE_NAMES)}  # fmt: skip
    return TrainedDemand(models=models, metrics={"backtest": metrics, "rounds": final_rounds,
                                                 "feature_importance": importance},
                         data=data, config=cfg, rounds=final_rounds)


def config_dict(cfg: DemandTrainConfig) -> dict[str, Any]:
    return asdict(cfg)
