"""Storing a trained anomaly detector in the registry and reading it back (plain JSON, no pickles).

Artefacts: ``forest.json`` (the trees as arrays, see :mod:`ml.anomaly.forest`) and ``pipeline.json`` (feature
list, category vocabulary, flag threshold). The registry adds ``metadata.json``; ``model_card.md`` says what the
score means.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ml.anomaly.forest import Forest
from ml.anomaly.train import TrainedAnomaly, config_dict
from ml.delay.features import FEATURES, DelayFeatures
from ml.errors import InputError
from ml.registry import ModelRef, dumps, save

NAME = "anomaly"
FOREST_FILE = "forest.json"
PIPELINE_FILE = "pipeline.json"
THRESHOLD_RULE = "the score the top `contamination` share of the training orders exceed"


def save_anomaly(trained: TrainedAnomaly, models_dir: str | Path) -> ModelRef:
    """Write ``trained`` as a new ``anomaly`` version under ``models_dir``."""
    pipeline = {**trained.features.to_dict(), "threshold": trained.threshold}
    artifacts = {
        FOREST_FILE: json.dumps(trained.forest.to_dict(), separators=(",", ":")).encode(),
        PIPELINE_FILE: (json.dumps(pipeline, indent=2, sort_keys=True) + "\n").encode(),
    }
    metadata: dict[str, Any] = {
        "task": "unsupervised anomaly score of an order's shipping features (isolation forest)",
        "features": list(FEATURES),
        "vocabulary": trained.features.vocabulary,
        "threshold": trained.threshold,
        "threshold_rule": THRESHOLD_RULE,
        "metrics": trained.metrics,
        "training_data": trained.data,
        "params": config_dict(trained.config),
    }

    def documents(meta: dict[str, Any]) -> dict[str, str]:
        return {"model_card.md": anomaly_card(meta), "metrics.json": dumps(meta["metrics"])}

    return save(models_dir, NAME, artifacts, metadata, documents)


def read_anomaly(ref: ModelRef) -> tuple[Forest, DelayFeatures, float]:
    """Forest, feature pipeline and flag threshold of a stored anomaly version."""
    try:
        forest = Forest.from_dict(json.loads(ref.file(FOREST_FILE).read_text(encoding="utf-8")))
        pipeline = json.loads(ref.file(PIPELINE_FILE).read_text(encoding="utf-8"))
        threshold = float(pipeline["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read anomaly model {ref.version} in {ref.path}: {exc}", field="model") from exc
    return forest, DelayFeatures.from_dict(pipeline), threshold


def anomaly_card(meta: Mapping[str, Any]) -> str:
    """Model card of an anomaly detector version."""
    m, data, params = meta["metrics"], meta["training_data"], meta["params"]
    quantiles = ", ".join(f"{k} {v:.4f}" for k, v in m["score_quantiles"].items())
    return f"""# Order anomaly detector {meta["version"]}

**What it scores.** How unusual an order's ten shipping features are ({", ".join(meta["features"])}),
as the isolation-forest score `2 ** (-mean path length / c({params["max_samples"]}))` in (0, 1]: about 0.5
and below is ordinary, near 1 is isolated by very few random splits. Labels (late or not) are not used.

**Flag.** An order is flagged when its score is above {m["threshold"]:.4f}: {THRESHOLD_RULE}
(contamination {m["contamination"]:g}; {m["flagged_share"]:.2%} of the training orders are flagged).

**Data.** {data["rows_used"]} orders from {data["source"]} ({data["rows_rejected"]} rejected rows; sampled:
{data["subsampled"]}); fingerprint `{data["fingerprint"]["sha256"][:16]}`. Score quantiles: {quantiles}.

**Training.** scikit-learn IsolationForest, {params["n_estimators"]} trees of {params["max_samples"]} rows,
seed {params["seed"]}; categories are the delay model's codes. Served with numpy from the exported trees.

**Limits.** An unusual order is not a late one: the flag is a reason to look, not a prediction. Orders
unlike the training data in ways the ten features do not show (dates, ids, statuses) are not detected.
"""
