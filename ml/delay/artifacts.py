"""Storing a trained delay model in the registry and reading it back.

Artefacts are plain text: ``model.txt`` (LightGBM's own model format) and ``pipeline.json`` (feature list,
category vocabulary, calibration, decision threshold). ``metadata.json`` and ``model_card.md`` are added by
the registry.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightgbm as lgb

from ml.delay.features import FEATURES, DelayFeatures
from ml.delay.train import Calibration, TrainedDelay
from ml.errors import InputError
from ml.model_card import delay_card
from ml.registry import ModelRef, dumps, save

MODEL_FILE = "model.txt"
PIPELINE_FILE = "pipeline.json"
THRESHOLD_RULE = "maximise Youden's J (TPR - FPR) on calibrated out-of-fold probabilities"


def save_delay(trained: TrainedDelay, models_dir: str | Path) -> ModelRef:
    """Write ``trained`` as a new ``delay`` version under ``models_dir``."""
    pipeline = {
        **trained.features.to_dict(),
        "calibration": asdict(trained.calibration),
        "threshold": trained.threshold,
    }
    artifacts = {
        MODEL_FILE: trained.booster.model_to_string().encode(),
        PIPELINE_FILE: (json.dumps(pipeline, indent=2, sort_keys=True) + "\n").encode(),
    }
    metadata: dict[str, Any] = {
        "task": "binary classification: P(order is late)",
        "features": list(FEATURES),
        "categorical": trained.features.to_dict()["categorical"],
        "vocabulary": trained.features.vocabulary,
        "threshold": trained.threshold,
        "threshold_rule": THRESHOLD_RULE,
        "calibration": {"method": "platt", **asdict(trained.calibration)},
        "metrics": trained.metrics,
        "training_data": trained.data,
        "params": {**trained.config.lgb_params(), "holdout": trained.config.holdout,
                   "folds": trained.config.folds, "max_rows": trained.config.max_rows},
    }

    def documents(meta: dict[str, Any]) -> dict[str, str]:
        return {
            "model_card.md": delay_card(meta),
            "metrics.json": dumps(meta["metrics"]),
        }

    return save(models_dir, "delay", artifacts, metadata, documents)


def read_delay(ref: ModelRef) -> tuple[lgb.Booster, DelayFeatures, Calibration, float]:
    """Booster, feature pipeline, calibration and threshold of a stored delay version."""
    try:
        booster = lgb.Booster(model_str=ref.file(MODEL_FILE).read_text(encoding="utf-8"))
        pipeline = json.loads(ref.file(PIPELINE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, lgb.basic.LightGBMError) as exc:
        raise InputError(f"cannot read delay model {ref.version} in {ref.path}: {exc}", field="model") from exc
    features = DelayFeatures.from_dict(pipeline)
    calibration = Calibration(**pipeline["calibration"])
    return booster, features, calibration, float(pipeline["threshold"])
