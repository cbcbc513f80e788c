"""The stored models, read from the model registry (``RIMAS_MODELS_DIR``): ``GET /models`` lists the delay, demand
and anomaly models' latest versions, ``GET /models/{name}`` gives one model's card: version, training time, data
and its fingerprint, headline metrics against the baselines, feature importance, the delay model's reliability
curve, the demand model's backtest, the anomaly detector's score quantiles and the model card's Markdown.

Everything comes from the version's ``metadata.json`` and ``model_card.md`` (:mod:`ml.registry`); what an older
version did not record (feature importance and calibration bins are recorded since they were added to training)
is null. ``serving_version`` is the version the server loaded at start-up: a version trained since then serves
after a restart.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from ml.errors import InputError
from ml.registry import ModelRef, list_versions
from server.auth import Viewer
from server.deps import ResourcesDep
from server.errors import ApiError
from server.resources import Resources

router = APIRouter(prefix="/models", tags=["models"])

ModelName = Literal["delay", "demand", "anomaly"]
CARD_FILE = "model_card.md"
IMPORTANCE_KINDS = {"gain": "share of the total split gain of the model's trees",
                    "splits": "share of the forest's splits that test the feature"}  # fmt: skip
DELAY_METRICS = ("roc_auc", "pr_auc", "brier", "ece", "log_loss", "accuracy")
DEMAND_METRICS = ("smape", "wape", "mae", "p90_coverage")
LOWER_IS_BETTER = ("brier", "ece", "log_loss", "smape", "wape", "mae")


class ModelSummary(BaseModel):
    """A model's latest stored version (all null but ``name`` and ``reason`` when none is stored)."""

    name: ModelName
    task: str | None = None
    version: str | None = Field(None, description="<UTC timestamp>-<artefact hash>")
    created_at: str | None = Field(None, description="when the version was trained (RFC 3339, UTC)")
    versions: int = Field(0, description="versions stored")
    serving_version: str | None = Field(None, description="the version the server loaded at start-up")
    reason: str | None = Field(None, description="why no version is stored or served")


class ModelList(BaseModel):
    items: list[ModelSummary]


class TrainingData(BaseModel):
    source: str
    rows: int | None = Field(None, description="rows the model was trained and evaluated on")
    period: str | None = Field(None, description="first to last day of the data (time series only)")
    fingerprint: str | None = Field(None, description="SHA-256 of the training frame's values and columns")
    details: dict[str, Any] = Field(description="everything recorded about the data")


class MethodMetrics(BaseModel):
    method: str
    this_model: bool
    metrics: dict[str, float | None]


class Comparison(BaseModel):
    """Headline metrics of the model and its baselines on data none of them was fitted on."""

    evaluation: str = Field(description="the data the metrics are measured on")
    metrics: list[str] = Field(description="the metric names, in display order")
    lower_is_better: list[str]
    rows: list[MethodMetrics]


class FeatureShare(BaseModel):
    feature: str
    share: float


class FeatureImportance(BaseModel):
    kind: Literal["gain", "splits"]
    description: str
    features: list[FeatureShare] = Field(description="largest share first")


class CalibrationBin(BaseModel):
    lower: float
    upper: float
    n: int
    mean_predicted: float
    observed_rate: float


class CalibrationCurve(BaseModel):
    """The reliability curve: observed late rate against mean predicted probability per probability bin."""

    data: str
    calibrated: list[CalibrationBin]
    uncalibrated: list[CalibrationBin]


class ModelCard(ModelSummary):
    """One model version's card."""

    training_data: TrainingData
    threshold: float | None = Field(None, description="decision (delay) or flag (anomaly) threshold")
    comparison: Comparison | None = Field(None, description="null for the anomaly detector (no baseline)")
    feature_importance: FeatureImportance | None = Field(None, description="null: not recorded for this version")
    calibration: CalibrationCurve | None = Field(None, description="delay only; null: not recorded")
    score_quantiles: dict[str, float] | None = Field(None, description="anomaly only: training score quantiles")
    card_markdown: str | None = Field(None, description="the version's model card")
    metrics: dict[str, Any] = Field(description="every metric recorded (metrics.json)")


# -- reading the registry (in a worker thread) --------------------------------------------------------------------


def _summary(res: Resources, name: ModelName) -> tuple[ModelSummary, ModelRef | None]:
    status = res.models.get(name)
    serving = status.version if status is not None else None
    try:
        versions = list_versions(res.settings.resolved_models_dir, name)
    except InputError as exc:
        raise ApiError(503, "unavailable", f"the {name} model's registry folder is unreadable: {exc}") from exc
    if not versions:
        reason = (status.reason if status is not None else None) or f"no {name} model is stored"
        return ModelSummary(name=name, serving_version=serving, reason=reason), None
    ref = versions[-1]
    meta = ref.metadata
    summary = ModelSummary(name=name, task=meta.get("task"), version=ref.version,
                           created_at=meta.get("created_at"), versions=len(versions), serving_version=serving,
                           reason=None if serving else (status.reason if status is not None else None))  # fmt: skip
    return summary, ref


def _rows(metrics: dict[str, Any], names: tuple[str, ...]) -> dict[str, float | None]:
    return {n: (float(metrics[n]) if isinstance(metrics.get(n), int | float) else None) for n in names}


def _comparison(name: str, metrics: dict[str, Any]) -> Comparison | None:
    if name == "delay" and "holdout" in metrics:
        base = metrics.get("baselines") or {}
        rows = [MethodMetrics(method="LightGBM, calibrated (this model)", this_model=True,
                              metrics=_rows(metrics["holdout"], DELAY_METRICS)),
                MethodMetrics(method="LightGBM, uncalibrated", this_model=False,
                              metrics=_rows(metrics.get("holdout_uncalibrated") or {}, DELAY_METRICS)),
                MethodMetrics(method="logistic regression", this_model=False,
                              metrics=_rows(base.get("logistic_regression") or {}, DELAY_METRICS)),
                MethodMetrics(method="class prior", this_model=False, metrics=_rows(base.get("prior") or {},
                                                                                    DELAY_METRICS))]  # fmt: skip
        return Comparison(evaluation=f"holdout, {metrics['holdout'].get('n')} orders", metrics=list(DELAY_METRICS),
                          lower_is_better=[m for m in DELAY_METRICS if m in LOWER_IS_BETTER], rows=rows)  # fmt: skip
    if name == "demand" and "backtest" in metrics:
        bt = metrics["backtest"]
        labels = {"model": "LightGBM P50 (this model)", "seasonal_naive": "seasonal naive (last week)",
                  "same_weekday_last_year": "same weekday last year"}  # fmt: skip
        rows = [MethodMetrics(method=label, this_model=key == "model", metrics=_rows(bt.get(key) or {}, DEMAND_METRICS))
                for key, label in labels.items()]  # fmt: skip
        window = f"backtest: the last {bt.get('horizon')} days ({bt.get('holdout_start')} to {bt.get('holdout_end')})"
        return Comparison(evaluation=f"{window} of {bt.get('series')} series", metrics=list(DEMAND_METRICS),
                          lower_is_better=[m for m in DEMAND_METRICS if m in LOWER_IS_BETTER], rows=rows)  # fmt: skip
    return None


def _importance(metrics: dict[str, Any]) -> FeatureImportance | None:
    recorded = metrics.get("feature_importance")
    if not isinstance(recorded, dict) or recorded.get("kind") not in IMPORTANCE_KINDS:
        return None
    shares = sorted(((str(f), float(s)) for f, s in (recorded.get("shares") or {}).items()), key=lambda p: -p[1])
    return FeatureImportance(kind=recorded["kind"], description=IMPORTANCE_KINDS[recorded["kind"]],
                             features=[FeatureShare(feature=f, share=s) for f, s in shares])  # fmt: skip


def _calibration(metrics: dict[str, Any]) -> CalibrationCurve | None:
    recorded = metrics.get("calibration_bins")
    if not isinstance(recorded, dict):
        return None
    return CalibrationCurve(data=str(recorded.get("data", "holdout")),
                            calibrated=[CalibrationBin(**b) for b in recorded.get("calibrated") or []],
                            uncalibrated=[CalibrationBin(**b) for b in recorded.get("uncalibrated") or []])  # fmt: skip


def _training_data(meta: dict[str, Any]) -> TrainingData:
    data = dict(meta.get("training_data") or {})
    rows = data.get("rows_used", data.get("rows"))
    first, last = data.get("first_date"), data.get("last_date")
    period = f"{first} to {last}" if first and last else None
    return TrainingData(source=str(data.get("source", "unknown")), rows=rows if isinstance(rows, int) else None,
                        period=period, fingerprint=(data.get("fingerprint") or {}).get("sha256"),
                        details=data)  # fmt: skip


def _card(res: Resources, name: ModelName) -> ModelCard:
    summary, ref = _summary(res, name)
    if ref is None:
        raise ApiError(404, "not_found", summary.reason or f"no {name} model is stored")
    meta = ref.metadata
    metrics = dict(meta.get("metrics") or {})
    card_path = ref.file(CARD_FILE)
    quantiles = metrics.get("score_quantiles") if name == "anomaly" else None
    threshold = meta.get("threshold")
    return ModelCard(
        **summary.model_dump(),
        training_data=_training_data(meta),
        threshold=float(threshold) if isinstance(threshold, int | float) else None,
        comparison=_comparison(name, metrics),
        feature_importance=_importance(metrics),
        calibration=_calibration(metrics) if name == "delay" else None,
        score_quantiles={str(k): float(v) for k, v in quantiles.items()} if isinstance(quantiles, dict) else None,
        card_markdown=card_path.read_text(encoding="utf-8") if card_path.is_file() else None,
        metrics=metrics,
    )


# -- routes ----------------------------------------------------------------------------------------------------


@router.get("", response_model=ModelList, summary="The stored models' latest versions")
async def list_models(res: ResourcesDep, _: Viewer) -> ModelList:
    """The delay, demand and anomaly models: each one's latest stored version, when it was trained, how many
    versions are stored and which version the server is serving (null, with the reason, when none is)."""
    found = await asyncio.to_thread(lambda: [_summary(res, name)[0] for name in get_args(ModelName)])
    return ModelList(items=found)


@router.get("/{name}", response_model=ModelCard, summary="One model's card: data, metrics, importance, plots")
async def model_card(
    name: Annotated[ModelName, Path(description="delay, demand or anomaly")], res: ResourcesDep, _: Viewer
) -> ModelCard:
    """The latest stored version of ``name``: its data and fingerprint, headline metrics against the baselines,
    feature importance, the delay model's reliability curve, the anomaly detector's score quantiles and the
    model card. 404 when no version is stored."""
    return await asyncio.to_thread(_card, res, name)
