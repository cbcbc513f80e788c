"""Storing a trained demand model in the registry and reading it back (plain-text artefacts only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightgbm as lgb

from ml.demand.features import FEATURE_NAMES, LEVEL_FLOOR, LEVEL_WINDOW
from ml.demand.train import QUANTILES, QuantileModels, TrainedDemand, config_dict
from ml.errors import InputError
from ml.model_card import demand_card
from ml.registry import ModelRef, dumps, save

PIPELINE_FILE = "pipeline.json"


def model_file(quantile: str) -> str:
    return f"model_{quantile}.txt"


def save_demand(trained: TrainedDemand, models_dir: str | Path) -> ModelRef:
    """Write ``trained`` as a new ``demand`` version under ``models_dir``."""
    models = trained.models
    pipeline = {
        "features": list(FEATURE_NAMES),
        "horizon": models.horizon,
        "quantiles": QUANTILES,
        "integer_sales": models.integer,
        "level_window": LEVEL_WINDOW,
        "level_floor": LEVEL_FLOOR,
        "covariates": {"discount": "the day's planned promotion discount (0 = none), known in advance"},
    }
    artifacts = {model_file(q): b.model_to_string().encode() for q, b in models.boosters.items()}
    artifacts[PIPELINE_FILE] = (json.dumps(pipeline, indent=2, sort_keys=True) + "\n").encode()
    metadata: dict[str, Any] = {
        "task": "daily demand quantiles (P50, P90) per (store, item)",
        "features": list(FEATURE_NAMES),
        "horizon": models.horizon,
        "quantiles": QUANTILES,
        "integer_sales": models.integer,
        "covariates": ["discount"],
        "metrics": trained.metrics,
        "training_data": trained.data,
        "params": {**config_dict(trained.config), "rounds": trained.rounds},
    }

    def documents(meta: dict[str, Any]) -> dict[str, str]:
        return {
            "model_card.md": demand_card(meta),
            "metrics.json": dumps(meta["metrics"]),
        }

    return save(models_dir, "demand", artifacts, metadata, documents)


def read_demand(ref: ModelRef) -> QuantileModels:
    """The quantile boosters of a stored demand version."""
    try:
        pipeline = json.loads(ref.file(PIPELINE_FILE).read_text(encoding="utf-8"))
        if list(pipeline["features"]) != list(FEATURE_NAMES):
            raise ValueError("the model was trained with a different feature list")
        boosters = {
            q: lgb.Booster(model_str=ref.file(model_file(q)).read_text(encoding="utf-8"))
            for q in pipeline["quantiles"]
        }
    except (OSError, ValueError, KeyError, lgb.basic.LightGBMError) as exc:
        raise InputError(f"cannot read demand model {ref.version} in {ref.path}: {exc}", field="model") from exc
    return QuantileModels(boosters=boosters, horizon=int(pipeline["horizon"]),
                          integer=bool(pipeline["integer_sales"]))
