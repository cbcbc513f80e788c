"""Server start-up: load the stored models, train them when missing and allowed, else say why not."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml.delay.model import DelayModel
from ml.demand.model import DemandModel
from ml.startup import ensure_models


def _no_data() -> pd.DataFrame:
    raise AssertionError("must not load data when the models are present")


def test_missing_models_are_reported_when_training_is_disabled(tmp_path: Path) -> None:
    status = ensure_models(tmp_path, _no_data, _no_data, train_if_missing=False)
    assert {s.status for s in status.values()} == {"missing"}
    assert "rimas train delay" in (status["delay"].reason or "")
    assert status["demand"].model is None


def test_trains_when_missing_then_loads_what_is_stored(
    tmp_path: Path, demo_orders: pd.DataFrame, sales: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ml.startup as startup
    from ml.demand.train import DemandTrainConfig

    monkeypatch.setattr(startup, "startup_demand_config",
                        lambda horizon: DemandTrainConfig(horizon=horizon, max_rounds=40, train_days=120))
    first = ensure_models(tmp_path, lambda: demo_orders.head(3000), lambda: sales, True, demand_horizon=14,
                          severity_thresholds={"critical": 0.9, "warning": 0.8, "info": 0.1})
    assert first["delay"].status == first["demand"].status == "trained"
    delay = first["delay"].model
    assert isinstance(delay, DelayModel) and delay.severity_thresholds["critical"] == 0.9
    assert isinstance(first["demand"].model, DemandModel) and first["demand"].model.horizon == 14

    again = ensure_models(tmp_path, _no_data, _no_data, False)
    assert again["delay"].status == again["demand"].status == "present"
    assert again["delay"].version == first["delay"].version
    assert again["demand"].version == first["demand"].version


def test_a_training_failure_is_reported_not_raised(tmp_path: Path) -> None:
    def broken() -> pd.DataFrame:
        raise ConnectionError("database is down")

    status = ensure_models(tmp_path, broken, lambda: pd.DataFrame({"date": []}), True)
    assert status["delay"].status == "missing"
    assert "database is down" in (status["delay"].reason or "")
    assert status["demand"].status == "missing" and "training failed" in (status["demand"].reason or "")


def test_an_unreadable_stored_model_is_reported(tmp_path: Path) -> None:
    from ml.registry import save

    save(tmp_path, "delay", {"model.txt": b"not a lightgbm model"}, {})
    status = ensure_models(tmp_path, _no_data, _no_data, False)
    assert status["delay"].status == "missing"
    assert "unreadable" in (status["delay"].reason or "")
