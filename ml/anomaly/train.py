"""Training the order anomaly detector: an isolation forest over the delay model's ten shipping features.

Rows go through the delay model's feature pipeline (:class:`~ml.delay.features.DelayFeatures`: the same
category normalisation and checks; categories become their codes), bad rows are dropped and reported, and
scikit-learn's ``IsolationForest`` is fitted (``max_samples`` rows per tree, seeded). The flag threshold is the
score that the top ``contamination`` share of the training orders exceed (1 % by default): an order scoring
above it is as unusual as the rarest 1 % of the orders the detector learned from. Labels are not used. Each
feature's share of the forest's splits is recorded with the metrics, as its feature importance.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from ml.anomaly.forest import Forest, percentile_threshold
from ml.delay.features import FEATURES, DelayFeatures, canonical_columns
from ml.errors import InputError, rows_with_errors
from ml.registry import data_fingerprint

log = logging.getLogger(__name__)


@dataclass
class AnomalyTrainConfig:
    """Isolation-forest settings (defaults suit 1k-100k orders; training takes about a second)."""

    n_estimators: int = 100
    max_samples: int = 256
    contamination: float = 0.01
    max_rows: int | None = 50_000
    seed: int = 7

    def check(self) -> None:
        if not 0.0 < self.contamination < 0.5:
            raise InputError(f"contamination must be in (0, 0.5), got {self.contamination}", field="contamination")
        if self.n_estimators < 1 or self.max_samples < 2:
            raise InputError("n_estimators must be >= 1 and max_samples >= 2", field="n_estimators")


@dataclass
class TrainedAnomaly:
    """Everything needed to store and serve a trained anomaly detector."""

    forest: Forest
    features: DelayFeatures
    threshold: float
    metrics: dict[str, Any]
    data: dict[str, Any]
    config: AnomalyTrainConfig
    row_errors: list[InputError] = field(default_factory=list)


def train_anomaly(
    frame: pd.DataFrame, config: AnomalyTrainConfig | None = None, *, source: str = "unknown"
) -> TrainedAnomaly:
    """Fit the detector on a frame of orders (our or the public column names; labels ignored)."""
    cfg = config or AnomalyTrainConfig()
    cfg.check()
    canon = canonical_columns(frame)
    if len(canon) == 0:
        raise InputError("no rows to train on", field="rows")
    checked = DelayFeatures.fit(canon).check(canon)
    good = canon.iloc[checked.positions].reset_index(drop=True)
    if len(good) < 2:
        raise InputError("fewer than 2 usable rows to train on", field="rows")
    features = DelayFeatures.fit(good)
    matrix = features.transform(good)
    sampled = cfg.max_rows is not None and len(matrix) > cfg.max_rows
    if sampled:
        pick = np.random.default_rng(cfg.seed).choice(len(matrix), size=cfg.max_rows, replace=False)
        matrix = matrix[np.sort(pick)]
    model = IsolationForest(
        n_estimators=cfg.n_estimators,
        max_samples=min(cfg.max_samples, len(matrix)),
        contamination="auto",
        random_state=cfg.seed,
    )
    model.fit(matrix)
    forest = Forest.from_sklearn(model, len(FEATURES))
    scores = forest.scores(matrix)
    threshold = percentile_threshold(scores, cfg.contamination)
    metrics = {
        "contamination": cfg.contamination,
        "threshold": threshold,
        "flagged_share": float((scores > threshold).mean()),
        "score_quantiles": {f"p{q}": float(np.percentile(scores, q)) for q in (1, 25, 50, 75, 99)},
        "feature_importance": {"kind": "splits", "shares": dict(zip(FEATURES, forest.split_shares().tolist(),
                                                                      strict=True))},
    }
    data = {
        "source": source,
        "rows_input": len(frame),
        "rows_rejected": rows_with_errors(checked.errors),
        "rows_used": len(matrix),
        "subsampled": sampled,
        "fingerprint": data_fingerprint(good[list(FEATURES)]),
    }
    log.info("anomaly model: %d trees on %d orders, threshold %.4f", cfg.n_estimators, len(matrix), threshold)
    return TrainedAnomaly(forest, features, threshold, metrics, data, cfg, checked.errors)


def config_dict(cfg: AnomalyTrainConfig) -> dict[str, Any]:
    return asdict(cfg)
