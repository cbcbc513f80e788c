"""Training the delay-risk classifier.

Procedure (all randomness seeded):

1. validate the rows with the shared feature pipeline (bad rows are dropped and reported), drop rows whose
   label is unknown, optionally subsample (``max_rows``);
2. stratified split into train (80 %) and holdout (20 %);
3. stratified k-fold cross-validation of LightGBM on the train part, each fold with early stopping on its
   validation fold; the out-of-fold scores give the CV metrics, the number of boosting rounds, the
   probability calibration (Platt scaling of the raw score, fitted out of fold) and the decision threshold
   (Youden's J on the calibrated out-of-fold probabilities);
4. the final booster is fitted on the whole train part with the CV's mean best round count;
5. holdout metrics for the calibrated model, the uncalibrated model and two baselines (the class prior and
   a logistic regression on one-hot categories and standardised numbers), the holdout's reliability curve
   (calibrated and uncalibrated, 10 bins) and the final booster's feature importance (share of split gain).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml.csvio import LINE
from ml.data import parse_late_label
from ml.delay.features import CATEGORICAL, CATEGORICAL_INDEX, FEATURES, NUMERIC, DelayFeatures, canonical_columns
from ml.errors import InputError, rows_with_errors
from ml.lgbm import gain_importance, tree_params
from ml.metrics import calibration_bins, classification_metrics, youden_threshold
from ml.progress import ProgressFactory, silent
from ml.registry import data_fingerprint

log = logging.getLogger(__name__)


@dataclass
class DelayTrainConfig:
    """Hyper-parameters and procedure settings (defaults suit 10k-20k rows on two cores)."""

    holdout: float = 0.2
    folds: int = 5
    learning_rate: float = 0.05
    num_leaves: int = 7
    min_data_in_leaf: int = 40
    feature_fraction: float = 0.9
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    max_rows: int | None = None
    seed: int = 7
    num_threads: int = 1

    def lgb_params(self) -> dict[str, Any]:
        return tree_params(self, objective="binary", metric="binary_logloss", max_cat_to_onehot=8)


@dataclass
class Calibration:
    """Platt scaling of the booster's raw score: p = 1 / (1 + exp(-(slope * raw + intercept)))."""

    slope: float
    intercept: float

    def apply(self, raw: np.ndarray) -> np.ndarray:
        z = self.slope * raw + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


@dataclass
class TrainedDelay:
    """Everything needed to store and serve a trained delay model."""

    booster: lgb.Booster
    features: DelayFeatures
    calibration: Calibration
    threshold: float
    metrics: dict[str, Any]
    data: dict[str, Any]
    config: DelayTrainConfig
    row_errors: list[InputError] = field(default_factory=list)


def prepare_training_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, list[InputError], int]:
    """Canonical columns, known labels only; returns (rows, labels, row errors, rows without a label)."""
    canon = canonical_columns(frame, require_label=True)
    labels, bad_label = parse_late_label(canon["is_late"])
    unknown = labels.isna().to_numpy(dtype=bool) & ~bad_label
    lines = canon[LINE].to_numpy() if LINE in canon.columns else np.arange(1, len(canon) + 1)
    errors = [
        InputError(f"label {raw!r} is not 0/1", field="is_late", allowed=["0", "1"], row=int(line))
        for line, raw in zip(lines[bad_label], canon["is_late"].to_numpy()[bad_label], strict=True)
    ]
    keep = ~(unknown | bad_label)
    return canon.loc[keep].reset_index(drop=True), labels[keep].to_numpy(dtype=bool), errors, int(unknown.sum())


def train_delay(
    frame: pd.DataFrame,
    config: DelayTrainConfig | None = None,
    *,
    source: str = "unknown",
    progress: ProgressFactory = silent,
) -> TrainedDelay:
    """Train, calibrate and evaluate a delay model on a frame of shipping rows with ``is_late``."""
    cfg = config or DelayTrainConfig()
    rows, y_all, errors, n_unlabelled = prepare_training_frame(frame)
    if len(rows) == 0:
        raise InputError("no rows with a known label to train on", field="is_late")
    # Vocabulary from the rows that pass the checks, then encode with it.
    provisional = DelayFeatures.fit(rows)
    checked = provisional.check(rows)
    errors.extend(checked.errors)
    good_rows = rows.iloc[checked.positions].reset_index(drop=True)
    y_good = y_all[checked.positions]
    features = DelayFeatures.fit(good_rows)
    X_all = features.transform(good_rows)
    _check_trainable(y_good, cfg)
    X, y, sampled = _subsample(X_all, y_good, cfg)

    idx = np.arange(len(y))
    tr_idx, ho_idx = train_test_split(idx, test_size=cfg.holdout, stratify=y, random_state=cfg.seed)
    X_tr, y_tr, X_ho, y_ho = X[tr_idx], y[tr_idx], X[ho_idx], y[ho_idx]
    params = cfg.lgb_params()

    oof_raw = np.zeros(len(y_tr))
    best_rounds: list[int] = []
    fold_auc: list[float] = []
    skf = StratifiedKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
    bar = progress("delay: cross-validation", cfg.folds + 2)
    for fit_idx, val_idx in skf.split(X_tr, y_tr):
        booster = _fit(params, X_tr[fit_idx], y_tr[fit_idx], cfg, valid=(X_tr[val_idx], y_tr[val_idx]))
        best_rounds.append(max(booster.best_iteration, 1))
        oof_raw[val_idx] = booster.predict(X_tr[val_idx], raw_score=True, num_iteration=booster.best_iteration)
        fold_auc.append(classification_metrics(y_tr[val_idx], _sigmoid(oof_raw[val_idx]), 0.5)["roc_auc"])
        bar.update()

    calibration = _fit_platt(oof_raw, y_tr)
    oof_prob = calibration.apply(oof_raw)
    threshold = youden_threshold(y_tr, oof_prob)
    n_rounds = round(float(np.mean(best_rounds)))
    final = _fit(params, X_tr, y_tr, cfg, rounds=n_rounds)
    bar.update()

    raw_ho = np.asarray(final.predict(X_ho, raw_score=True))
    prob_ho = calibration.apply(raw_ho)
    holdout = classification_metrics(y_ho, prob_ho, threshold)
    uncalibrated = classification_metrics(y_ho, _sigmoid(raw_ho), threshold)
    baselines = _baselines(X_tr, y_tr, X_ho, y_ho)
    bar.update()
    bar.close()

    cv = classification_metrics(y_tr, oof_prob, threshold)
    metrics: dict[str, Any] = {
        "holdout": holdout,
        "holdout_uncalibrated": {
            k: uncalibrated[k] for k in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "accuracy")
        },
        "cross_validation": {
            "folds": cfg.folds,
            "roc_auc_mean": float(np.mean(fold_auc)),
            "roc_auc_std": float(np.std(fold_auc)),
            "out_of_fold": cv,
            "best_rounds": best_rounds,
        },
        "baselines": baselines,
        "rounds": n_rounds,
        "calibration_bins": {
            "data": "holdout",
            "calibrated": calibration_bins(y_ho, prob_ho),
            "uncalibrated": calibration_bins(y_ho, _sigmoid(raw_ho)),
        },
        "feature_importance": {"kind": "gain", "shares": gain_importance(final, FEATURES)},
    }
    data = {
        "source": source,
        "rows_input": len(frame),
        "rows_unlabelled": n_unlabelled,
        "rows_rejected": rows_with_errors(errors),
        "rows_used": len(y),
        "rows_train": len(y_tr),
        "rows_holdout": len(y_ho),
        "subsampled": sampled,
        "late_rate": float(y.mean()),
        "fingerprint": data_fingerprint(
            pd.concat([good_rows[list(FEATURES)], pd.Series(y_good, name="is_late")], axis=1)
        ),
    }
    log.info("delay model: holdout ROC-AUC %.4f (logistic baseline %.4f), %d rounds",
             holdout["roc_auc"], baselines["logistic_regression"]["roc_auc"], n_rounds)
    return TrainedDelay(final, features, calibration, threshold, metrics, data, cfg, errors)


def _fit(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    cfg: DelayTrainConfig,
    *,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
    rounds: int | None = None,
) -> lgb.Booster:
    train_set = lgb.Dataset(X, label=y, feature_name=list(FEATURES), categorical_feature=list(CATEGORICAL_INDEX),
                            free_raw_data=False)
    if valid is None:
        return lgb.train(params, train_set, num_boost_round=rounds or cfg.max_rounds)
    valid_set = lgb.Dataset(valid[0], label=valid[1], reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=cfg.max_rounds,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )


def _fit_platt(raw: np.ndarray, y: np.ndarray) -> Calibration:
    model = LogisticRegression(C=1e6, max_iter=1000)
    model.fit(raw.reshape(-1, 1), y)
    slope = float(model.coef_[0][0])
    if not slope > 0:  # a non-increasing map would reverse the model's ranking: keep the raw score
        log.warning("calibration slope %.3f is not positive; using the uncalibrated score", slope)
        return Calibration(1.0, 0.0)
    return Calibration(slope, float(model.intercept_[0]))


def _sigmoid(raw: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-raw))


def _check_trainable(y: np.ndarray, cfg: DelayTrainConfig) -> None:
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    need = max(2 * cfg.folds, 10)
    if min(n_pos, n_neg) < need:
        raise InputError(
            f"too few rows to train: {n_pos} late and {n_neg} on-time; need at least {need} of each",
            field="is_late",
        )


def _subsample(X: np.ndarray, y: np.ndarray, cfg: DelayTrainConfig) -> tuple[np.ndarray, np.ndarray, bool]:
    if cfg.max_rows is None or len(y) <= cfg.max_rows:
        return X, y, False
    keep, _ = train_test_split(np.arange(len(y)), train_size=cfg.max_rows, stratify=y, random_state=cfg.seed)
    keep = np.sort(keep)
    return X[keep], y[keep], True


def _baselines(
    X_tr: np.ndarray, y_tr: np.ndarray, X_ho: np.ndarray, y_ho: np.ndarray
) -> dict[str, dict[str, float]]:
    """Holdout metrics of the class prior and of a one-hot logistic regression, for comparison."""
    prior = float(y_tr.mean())
    prior_metrics = classification_metrics(y_ho, np.full(len(y_ho), prior), 0.5)
    cat_cols = [FEATURES.index(c) for c in CATEGORICAL]
    num_cols = [FEATURES.index(c) for c in NUMERIC]
    logistic = make_pipeline(
        ColumnTransformer(
            [
                ("cat", OneHotEncoder(handle_unknown="ignore"), cat_cols),
                ("num", StandardScaler(), num_cols),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )
    logistic.fit(X_tr, y_tr)
    p_lr = logistic.predict_proba(X_ho)[:, 1]
    lr_threshold = youden_threshold(y_tr, logistic.predict_proba(X_tr)[:, 1])
    lr_metrics = classification_metrics(y_ho, p_lr, lr_threshold)
    keep = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "accuracy")
    return {
        "prior": {k: prior_metrics[k] for k in keep},
        "logistic_regression": {k: lr_metrics[k] for k in keep},
    }
