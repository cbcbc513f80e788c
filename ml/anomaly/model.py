"""Serving the anomaly detector: load once, score frames or records.

:class:`AnomalyModel` follows the same ``load`` then ``predict`` shape as the delay model. :meth:`~AnomalyModel.score`
is lenient and vectorised: the rows the feature pipeline accepts get ``anomaly_score`` (in (0, 1], higher is
more anomalous), ``is_anomaly`` (score above the stored threshold) and ``model_version``; the others become
:class:`~ml.errors.InputError` values with their line numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.anomaly.artifacts import NAME, read_anomaly
from ml.anomaly.forest import Forest
from ml.delay.features import DelayFeatures, canonical_columns, frame_from_records
from ml.delay.model import Scored
from ml.errors import InputError
from ml.registry import ModelRef, resolve


class AnomalyModel:
    """The order anomaly detector at serving time."""

    name = NAME

    def __init__(self) -> None:
        self._forest: Forest | None = None
        self._features: DelayFeatures | None = None
        self.threshold: float = 1.0
        self.ref: ModelRef | None = None

    def load(self, path: str | Path) -> AnomalyModel:
        """Load a version directory, or the latest ``anomaly`` version under a models directory."""
        ref = resolve(path, self.name)
        self._forest, self._features, self.threshold = read_anomaly(ref)
        self.ref = ref
        return self

    @property
    def loaded(self) -> bool:
        return self._forest is not None

    @property
    def model_version(self) -> str:
        return self._require_ref().version

    @property
    def features(self) -> DelayFeatures:
        self._require_ref()
        assert self._features is not None
        return self._features

    def _require_ref(self) -> ModelRef:
        if self.ref is None:
            raise RuntimeError("AnomalyModel.load() has not been called")
        return self.ref

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        """Anomaly scores of an encoded feature matrix."""
        self._require_ref()
        assert self._forest is not None
        return self._forest.scores(matrix) if len(matrix) else np.zeros(0)

    def score(self, frame: pd.DataFrame) -> Scored:
        """Score every valid row (index kept); invalid rows become errors. A missing column raises."""
        if len(frame) == 0:
            raise InputError("no rows to score", field="rows")
        checked = self.features.check(canonical_columns(frame))
        scores = self.scores(checked.matrix)
        out = pd.DataFrame(index=frame.index[checked.positions])
        out["anomaly_score"] = scores
        out["is_anomaly"] = scores > self.threshold
        out["model_version"] = self.model_version
        return Scored(predictions=out, errors=checked.errors)

    def predict(self, data: pd.DataFrame | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Strict scoring of a frame or a list of dicts: one dict per row, or the first problem raised."""
        frame = data if isinstance(data, pd.DataFrame) else frame_from_records(data)
        scored = self.score(frame)
        if scored.errors:
            raise scored.errors[0]
        return [
            {"anomaly_score": float(s), "is_anomaly": bool(a), "model_version": v}
            for s, a, v in zip(
                scored.predictions["anomaly_score"],
                scored.predictions["is_anomaly"],
                scored.predictions["model_version"],
                strict=True,
            )
        ]
