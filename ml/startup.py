"""Loading the models when the server starts, training them from the seeded data when none is stored.

:func:`ensure_models` is called once at start-up. For each model (``delay``, ``demand``, ``anomaly``) it loads
the latest stored version; when there is none (or it cannot be read) and training is allowed, it trains one
from the given loaders, stores it and loads it; otherwise it reports the model as missing with the reason.
Training from the demo seed (about 20k orders and 550k daily sales rows) takes well under a minute on two
cores: the delay model trains on all labelled orders; the demand model uses the last 364 days as training
targets, capped at 120k rows by a seeded sample, and at most 300 boosting rounds per quantile; the anomaly
detector (an isolation forest, about a second) uses the same orders as the delay model, loaded once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from ml.anomaly import AnomalyModel, AnomalyTrainConfig, save_anomaly, train_anomaly
from ml.delay.artifacts import save_delay
from ml.delay.model import DelayModel
from ml.delay.train import DelayTrainConfig, train_delay
from ml.demand.artifacts import save_demand
from ml.demand.model import DemandModel
from ml.demand.train import DemandTrainConfig, train_demand
from ml.errors import InputError
from ml.registry import latest

log = logging.getLogger(__name__)

SERVER_DEMAND_HORIZON = 56
"""Horizon of the demand model trained at start-up: covers a plan's horizon plus supplier lead time."""

StatusName = Literal["present", "trained", "missing"]


@dataclass
class ModelStatus:
    """What happened to one model at start-up."""

    name: str
    status: StatusName
    model: DelayModel | DemandModel | AnomalyModel | None = None
    version: str | None = None
    reason: str | None = None
    seconds: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status, "version": self.version, "reason": self.reason,
                "seconds": self.seconds}


def startup_delay_config() -> DelayTrainConfig:
    return DelayTrainConfig()


def startup_demand_config(horizon: int = SERVER_DEMAND_HORIZON) -> DemandTrainConfig:
    return DemandTrainConfig(horizon=horizon, max_rows=120_000, max_rounds=300)


def ensure_models(
    models_dir: str | Path,
    load_orders: Callable[[], pd.DataFrame],
    load_sales: Callable[[], pd.DataFrame],
    train_if_missing: bool,
    *,
    severity_thresholds: Mapping[str, float] | None = None,
    demand_horizon: int = SERVER_DEMAND_HORIZON,
) -> dict[str, ModelStatus]:
    """Load (or train, then load) the delay, demand and anomaly models; return a status per model name."""
    out: dict[str, ModelStatus] = {}
    loaded: list[pd.DataFrame] = []

    def orders() -> pd.DataFrame:  # the delay and anomaly models train on the same orders: load them once
        if not loaded:
            loaded.append(load_orders())
        return loaded[0]

    def make_delay() -> DelayModel:
        return DelayModel(severity_thresholds=severity_thresholds)

    def train_delay_now() -> None:
        trained = train_delay(orders(), startup_delay_config(), source="seeded database (orders)")
        save_delay(trained, models_dir)

    def train_anomaly_now() -> None:
        save_anomaly(train_anomaly(orders(), AnomalyTrainConfig(), source="seeded database (orders)"), models_dir)

    def train_demand_now() -> None:
        trained = train_demand(load_sales(), startup_demand_config(demand_horizon),
                               source="seeded database (sales_daily)")
        save_demand(trained, models_dir)

    out["delay"] = _ensure("delay", models_dir, make_delay, train_delay_now, train_if_missing)
    out["demand"] = _ensure("demand", models_dir, DemandModel, train_demand_now, train_if_missing)
    out["anomaly"] = _ensure("anomaly", models_dir, AnomalyModel, train_anomaly_now, train_if_missing)
    for status in out.values():
        log.info("model %s: %s %s%s", status.name, status.status, status.version or "",
                 f" ({status.reason})" if status.reason else "")
    return out


def _ensure(
    name: str,
    models_dir: str | Path,
    make: Callable[[], DelayModel | DemandModel | AnomalyModel],
    train: Callable[[], None],
    train_if_missing: bool,
) -> ModelStatus:
    reason: str
    ref = latest(models_dir, name)
    if ref is not None:
        try:
            model = make().load(ref.path)
            return ModelStatus(name, "present", model, model.model_version)
        except InputError as exc:
            reason = f"stored version {ref.version} is unreadable: {exc}"
            log.warning("model %s: %s", name, reason)
    else:
        reason = f"no {name!r} model under {models_dir}"
    if not train_if_missing:
        return ModelStatus(name, "missing", reason=f"{reason}; training at start-up is disabled "
                                                   f"(run `rimas train {name}`)")
    started = time.perf_counter()
    try:
        train()
        model = make().load(models_dir)
    except Exception as exc:  # a start-up must report, not crash, whatever the data problem is
        log.exception("model %s: training at start-up failed", name)
        return ModelStatus(name, "missing", reason=f"{reason}; training failed: {exc}",
                           seconds=time.perf_counter() - started)
    return ModelStatus(name, "trained", model, model.model_version, reason=reason,
                       seconds=round(time.perf_counter() - started, 2))
