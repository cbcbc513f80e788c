"""Serving the delay model: load once, score frames or records, explain, assign severity.

:class:`DelayModel` follows the MLServer shape (``load`` then ``predict``). Every prediction carries
``delay_probability`` (calibrated P(late)), ``severity`` (from thresholds given by policy; defaults
critical > 0.7, warning > 0.5, info > 0.3, else none), ``top_features`` (plain-language explanations) and
``model_version``. Scoring is vectorised: features for the whole batch, one ``Booster.predict`` call, one
``pred_contrib`` call for the explanations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.delay.artifacts import read_delay
from ml.delay.explain import top_contributions
from ml.delay.features import DelayFeatures, canonical_columns, frame_from_records
from ml.delay.train import Calibration
from ml.errors import InputError
from ml.registry import ModelRef, resolve

DEFAULT_SEVERITY: dict[str, float] = {"critical": 0.7, "warning": 0.5, "info": 0.3}
SEVERITY_LEVELS = ("critical", "warning", "info")


def check_severity_thresholds(thresholds: Mapping[str, float]) -> dict[str, float]:
    """Validate severity thresholds: keys critical/warning/info, values in (0, 1), strictly decreasing."""
    missing = [k for k in SEVERITY_LEVELS if k not in thresholds]
    if missing:
        raise InputError(f"missing severity level {missing[0]!r}", field="severity_thresholds",
                         allowed=SEVERITY_LEVELS)
    values = [float(thresholds[k]) for k in SEVERITY_LEVELS]
    if not all(0.0 < v < 1.0 for v in values) or not values[0] > values[1] > values[2]:
        raise InputError(f"thresholds must lie in (0, 1) with critical > warning > info, got {values}",
                         field="severity_thresholds")
    return dict(zip(SEVERITY_LEVELS, values, strict=True))


def severity_of(prob: np.ndarray, thresholds: Mapping[str, float] = DEFAULT_SEVERITY) -> np.ndarray:
    """Severity per probability: the highest level whose threshold it exceeds (strictly), else ``none``."""
    t = check_severity_thresholds(thresholds)
    p = np.asarray(prob, dtype=np.float64)
    return np.select(
        [p > t["critical"], p > t["warning"], p > t["info"]], ["critical", "warning", "info"], "none"
    ).astype(object)


@dataclass
class Scored:
    """Lenient scoring result: predictions of the good rows (input index kept) and one error per bad row."""

    predictions: pd.DataFrame
    errors: list[InputError] = field(default_factory=list)


def _plain(value: Any) -> Any:
    """Python scalars for JSON: numpy numbers unwrapped, whole floats kept as floats."""
    return value.item() if isinstance(value, np.generic) else value


class DelayModel:
    """The delay-risk model at serving time."""

    name = "delay"

    def __init__(self, severity_thresholds: Mapping[str, float] | None = None, top_k: int = 3) -> None:
        self.severity_thresholds = check_severity_thresholds(severity_thresholds or DEFAULT_SEVERITY)
        self.top_k = top_k
        self._booster: lgb.Booster | None = None
        self._features: DelayFeatures | None = None
        self._calibration: Calibration | None = None
        self.threshold: float = 0.5
        self.ref: ModelRef | None = None

    # -- loading ------------------------------------------------------------------------------------------

    def load(self, path: str | Path) -> DelayModel:
        """Load a version directory, or the latest ``delay`` version under a models directory."""
        ref = resolve(path, self.name)
        self._booster, self._features, self._calibration, self.threshold = read_delay(ref)
        self.ref = ref
        return self

    @property
    def loaded(self) -> bool:
        return self._booster is not None

    @property
    def model_version(self) -> str:
        return self._require_ref().version

    @property
    def metadata(self) -> dict[str, Any]:
        return self._require_ref().metadata

    @property
    def features(self) -> DelayFeatures:
        self._require_ref()
        assert self._features is not None
        return self._features

    @property
    def booster(self) -> lgb.Booster:
        """The underlying LightGBM booster (raw scores; no calibration)."""
        self._require_ref()
        assert self._booster is not None
        return self._booster

    def _require_ref(self) -> ModelRef:
        if self.ref is None:
            raise RuntimeError("DelayModel.load() has not been called")
        return self.ref

    # -- scoring ------------------------------------------------------------------------------------------

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Calibrated P(late) for an encoded feature matrix."""
        self._require_ref()
        assert self._booster is not None and self._calibration is not None
        raw = np.asarray(self._booster.predict(matrix, raw_score=True))
        return self._calibration.apply(raw)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Per-feature contributions to the raw score (n x (features + 1)), TreeSHAP."""
        self._require_ref()
        assert self._booster is not None
        return np.asarray(self._booster.predict(matrix, pred_contrib=True))

    def score(self, frame: pd.DataFrame, *, explain: bool = True, with_features: bool = False) -> Scored:
        """Score every valid row; invalid rows become errors (with line numbers when the frame has them).

        A missing column is a problem of the whole input and raises :class:`InputError`. With
        ``with_features`` a ``features`` column holds each row's validated, normalised feature values (a
        dict, e.g. for an audit record of what was scored).
        """
        if len(frame) == 0:
            raise InputError("no rows to score", field="rows")
        canon = canonical_columns(frame)
        checked = self.features.check(canon)
        prob = self.probabilities(checked.matrix) if len(checked.matrix) else np.zeros(0)
        out = pd.DataFrame(index=frame.index[checked.positions])
        out["delay_probability"] = prob
        out["severity"] = severity_of(prob, self.severity_thresholds)
        if explain:
            contrib = self.contributions(checked.matrix) if len(checked.matrix) else np.zeros((0, 11))
            out["top_features"] = pd.Series(
                top_contributions(contrib, checked.clean, self.top_k), index=out.index, dtype=object
            )
        if with_features:
            records = checked.clean.astype(object).to_dict("records")
            out["features"] = pd.Series([{k: _plain(v) for k, v in r.items()} for r in records],
                                        index=out.index, dtype=object)
        out["model_version"] = self.model_version
        return Scored(predictions=out, errors=checked.errors)

    def predict(
        self, data: pd.DataFrame | Sequence[Mapping[str, Any]], *, explain: bool = True
    ) -> pd.DataFrame | list[dict[str, Any]]:
        """Strict scoring: all rows must be valid, else the first problem is raised as :class:`InputError`.

        A frame gives a frame (same index) with ``delay_probability``, ``severity``, ``top_features``,
        ``model_version``; a list of dicts gives a list of dicts with those keys.
        """
        as_records = not isinstance(data, pd.DataFrame)
        frame = data if isinstance(data, pd.DataFrame) else frame_from_records(data)
        scored = self.score(frame, explain=explain)
        if scored.errors:
            raise scored.errors[0]
        if not as_records:
            return scored.predictions
        records: list[dict[str, Any]] = []
        for row in scored.predictions.itertuples(index=False):
            rec = row._asdict()
            rec["delay_probability"] = float(rec["delay_probability"])
            records.append(rec)
        return records

    def predict_frame(self, frame: pd.DataFrame, *, explain: bool = True) -> pd.DataFrame:
        """:meth:`predict` for a frame, typed as such."""
        out = self.predict(frame, explain=explain)
        assert isinstance(out, pd.DataFrame)
        return out

    def predict_records(self, records: Sequence[Mapping[str, Any]], *, explain: bool = True) -> list[dict[str, Any]]:
        """:meth:`predict` for a list of dicts, typed as such."""
        out = self.predict(list(records), explain=explain)
        assert isinstance(out, list)
        return out
