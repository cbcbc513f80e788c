"""The anomaly detector: the exported forest scores exactly as scikit-learn's, it is stored as plain JSON and
loaded back, it flags the contamination share of its training orders, and start-up trains and reports it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import order
from sklearn.ensemble import IsolationForest

from ml.anomaly import AnomalyModel, AnomalyTrainConfig, save_anomaly, train_anomaly
from ml.delay.features import canonical_columns
from ml.errors import InputError
from ml.registry import latest, save
from ml.startup import ensure_models


@pytest.fixture(scope="module")
def sample(demo_orders: pd.DataFrame) -> pd.DataFrame:
    return demo_orders.head(3000)


def test_the_exported_forest_scores_exactly_as_scikit_learn(sample: pd.DataFrame) -> None:
    cfg = AnomalyTrainConfig(n_estimators=40, seed=3)
    trained = train_anomaly(sample, cfg)
    matrix = trained.features.transform(canonical_columns(sample))
    reference = IsolationForest(n_estimators=40, max_samples=256, contamination="auto", random_state=3).fit(matrix)
    assert np.allclose(trained.forest.scores(matrix), -reference.score_samples(matrix), rtol=0, atol=1e-12)


def test_it_flags_the_contamination_share_of_its_training_orders(sample: pd.DataFrame) -> None:
    trained = train_anomaly(sample, AnomalyTrainConfig(contamination=0.05))
    assert trained.metrics["flagged_share"] == pytest.approx(0.05, abs=0.005)
    assert 0.0 < trained.threshold < 1.0 and trained.data["rows_used"] == len(sample)
    with pytest.raises(InputError, match="contamination"):
        train_anomaly(sample, AnomalyTrainConfig(contamination=0.7))


def test_it_is_stored_as_json_and_scores_frames_and_records(sample: pd.DataFrame, tmp_path: Path) -> None:
    ref = save_anomaly(train_anomaly(sample, AnomalyTrainConfig(n_estimators=20)), tmp_path)
    assert {p.name for p in ref.path.iterdir()} >= {"forest.json", "pipeline.json", "metadata.json", "model_card.md"}
    assert "isolation-forest score" in (ref.path / "model_card.md").read_text()
    model = AnomalyModel().load(tmp_path)
    assert model.model_version == ref.version
    frame = pd.concat(
        [sample.head(3), pd.DataFrame([{**sample.iloc[0].to_dict(), "warehouse_block": "Z"}])], ignore_index=True
    )
    scored = model.score(frame)
    assert list(scored.predictions.index) == [0, 1, 2] and scored.errors[0].field == "warehouse_block"
    assert scored.predictions["anomaly_score"].between(0, 1).all()
    odd = order(weight_in_gms=90_000_000, cost_of_product=9_000_000, customer_care_calls=500)
    results = model.predict([order(), odd])
    assert results[1]["anomaly_score"] > results[0]["anomaly_score"] and results[0]["is_anomaly"] is False


def test_start_up_trains_loads_and_reports_the_anomaly_model(sample: pd.DataFrame, tmp_path: Path) -> None:
    loads: list[int] = []

    def orders() -> pd.DataFrame:
        loads.append(1)
        return sample

    def no_sales() -> pd.DataFrame:
        raise ConnectionError("no sales here")

    status = ensure_models(tmp_path, orders, no_sales, True)
    assert status["anomaly"].status == "trained" and isinstance(status["anomaly"].model, AnomalyModel)
    assert status["delay"].status == "trained" and len(loads) == 1  # the orders are loaded once for both
    assert status["anomaly"].as_dict()["version"] == latest(tmp_path, "anomaly").version  # type: ignore[union-attr]
    again = ensure_models(tmp_path, orders, no_sales, False)
    assert again["anomaly"].status == "present" and again["anomaly"].version == status["anomaly"].version


def test_an_unreadable_anomaly_version_is_reported(tmp_path: Path) -> None:
    save(tmp_path, "anomaly", {"forest.json": b"{not json"}, {})
    status = ensure_models(tmp_path, pd.DataFrame, pd.DataFrame, False)
    assert status["anomaly"].status == "missing" and "unreadable" in (status["anomaly"].reason or "")
