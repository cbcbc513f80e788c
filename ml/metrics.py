"""Evaluation metrics for the delay classifier and the demand forecaster.

Classification: ROC-AUC, PR-AUC (average precision), Brier score, log loss, expected calibration error and
threshold metrics. Forecasting: SMAPE with the Kaggle definition, WAPE and quantile coverage.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn import metrics as skm


def expected_calibration_error(y_true: ArrayLike, prob: ArrayLike, bins: int = 10) -> float:
    """ECE over ``bins`` equal-width probability bins: sum_b (n_b / n) * |mean(y)_b - mean(p)_b|."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(prob, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(total)


def calibration_bins(y_true: ArrayLike, prob: ArrayLike, bins: int = 10) -> list[dict[str, float]]:
    """The reliability curve over the ECE's ``bins`` equal-width bins: for each non-empty bin, its bounds, its
    count, the mean predicted probability and the observed positive rate (a calibrated model's lie on the
    diagonal)."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(prob, dtype=np.float64)
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            out.append({"lower": b / bins, "upper": (b + 1) / bins, "n": int(mask.sum()),
                        "mean_predicted": float(p[mask].mean()), "observed_rate": float(y[mask].mean())})  # fmt: skip
    return out


def classification_metrics(y_true: ArrayLike, prob: ArrayLike, threshold: float) -> dict[str, float]:
    """Ranking, probability and threshold metrics for binary predictions ``prob`` = P(y = 1)."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.clip(np.asarray(prob, dtype=np.float64), 1e-7, 1 - 1e-7)
    pred = (p >= threshold).astype(np.int64)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, p)) if both else float("nan"),
        "brier": float(skm.brier_score_loss(y, p)),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "ece": expected_calibration_error(y, p),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)) if both else float("nan"),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "threshold": float(threshold),
        "n": len(y),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
    }


def youden_threshold(y_true: ArrayLike, prob: ArrayLike) -> float:
    """The probability cut-off maximising TPR - FPR (Youden's J) on the given predictions."""
    fpr, tpr, thresholds = skm.roc_curve(np.asarray(y_true), np.asarray(prob))
    j = tpr - fpr
    best = int(np.argmax(j[1:])) + 1  # index 0 is the artificial threshold above every score
    return float(min(max(thresholds[best], 0.0), 1.0))


def smape(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Kaggle SMAPE in percent: 200/n * sum |F - A| / (|F| + |A|), a term being 0 when F = A = 0."""
    a = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    if a.size == 0:
        return float("nan")
    denom = np.abs(a) + np.abs(f)
    terms = np.divide(np.abs(f - a), denom, out=np.zeros_like(denom), where=denom != 0)
    return float(200.0 * terms.mean())


def wape(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Weighted absolute percentage error in percent: 100 * sum |F - A| / sum |A|."""
    a = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    denom = np.abs(a).sum()
    return float(100.0 * np.abs(f - a).sum() / denom) if denom > 0 else float("nan")


def coverage(actual: ArrayLike, upper: ArrayLike) -> float:
    """Share of actuals at or below the upper quantile forecast (ideal for a P90: 0.90)."""
    a = np.asarray(actual, dtype=np.float64)
    u = np.asarray(upper, dtype=np.float64)
    return float((a <= u).mean()) if a.size else float("nan")
