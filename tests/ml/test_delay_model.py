"""The delay model end to end: training, storage, serving, direction, categories, explanations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.delay.artifacts import save_delay
from ml.delay.model import DelayModel, severity_of
from ml.delay.train import DelayTrainConfig, train_delay
from ml.errors import InputError

ORDER = {
    "order_id": "ORD-1", "warehouse_block": "F", "mode_of_shipment": "Ship", "customer_care_calls": 4,
    "customer_rating": 3, "cost_of_product": 210.0, "prior_purchases": 3, "product_importance": "high",
    "gender": "F", "discount_offered": 2, "weight_in_gms": 4200,
}


@pytest.fixture(scope="module")
def model(delay_models_dir: Path) -> DelayModel:
    return DelayModel().load(delay_models_dir)


def test_raising_the_discount_raises_the_delay_probability(model: DelayModel) -> None:
    low, high = model.predict_records([ORDER, {**ORDER, "discount_offered": 40}])
    assert high["delay_probability"] > low["delay_probability"]
    assert high["delay_probability"] > 0.8  # discounts above 10 % are almost always late


def test_category_spelling_does_not_change_the_score(model: DelayModel) -> None:
    a, b, c = model.predict_records([
        {**ORDER, "product_importance": "High"},
        {**ORDER, "product_importance": "high"},
        {**ORDER, "product_importance": " HIGH ", "mode_of_shipment": "ship"},
    ])
    assert a["delay_probability"] == b["delay_probability"] == c["delay_probability"]


def test_unknown_category_is_rejected_naming_field_and_allowed_values(model: DelayModel) -> None:
    with pytest.raises(InputError) as info:
        model.predict_records([{**ORDER, "warehouse_block": "Z"}])
    assert info.value.field == "warehouse_block"
    assert info.value.allowed is not None and "A" in info.value.allowed and "Z" not in info.value.allowed


def test_prediction_carries_probability_severity_reasons_and_version(model: DelayModel) -> None:
    [pred] = model.predict_records([{**ORDER, "discount_offered": 40}])
    assert set(pred) == {"delay_probability", "severity", "top_features", "model_version"}
    assert 0.0 <= pred["delay_probability"] <= 1.0
    assert pred["severity"] == "critical"
    assert pred["model_version"] == model.model_version == model.metadata["version"]
    top = pred["top_features"]
    assert 1 <= len(top) <= 3
    assert top[0]["feature"] == "discount_offered"
    assert top[0]["effect"] == "raises"
    assert top[0]["text"] == "A 40% discount raises the delay risk"


def test_scoring_can_return_the_normalised_features_for_audit(model: DelayModel) -> None:
    scored = model.score(pd.DataFrame([{**ORDER, "product_importance": " High", "gender": "f"}]), with_features=True)
    [features] = scored.predictions["features"].tolist()
    assert features["product_importance"] == "high" and features["gender"] == "F"
    assert features["discount_offered"] == 2.0
    json.dumps(features)


def test_frame_input_gives_aligned_frame(model: DelayModel, demo_orders: pd.DataFrame) -> None:
    frame = demo_orders.head(20).set_index(pd.Index(range(100, 120)))
    out = model.predict_frame(frame, explain=False)
    assert out.index.tolist() == list(range(100, 120))
    assert "top_features" not in out.columns
    assert out["delay_probability"].between(0, 1).all()


def test_scores_survive_a_reload_and_match_the_public_layout(
    model: DelayModel, delay_models_dir: Path, public_orders: pd.DataFrame, demo_orders: pd.DataFrame
) -> None:
    again = DelayModel().load(delay_models_dir)
    labelled = demo_orders[demo_orders["is_late"].notna()].head(50)
    ours = model.predict_frame(labelled, explain=False)["delay_probability"].to_numpy()
    theirs = again.predict_frame(public_orders.head(50), explain=False)["delay_probability"].to_numpy()
    np.testing.assert_allclose(ours, theirs)


def test_severity_uses_strict_policy_thresholds() -> None:
    p = np.array([0.1, 0.3, 0.31, 0.5, 0.51, 0.7, 0.71, 0.99])
    assert severity_of(p).tolist() == ["none", "none", "info", "info", "warning", "warning", "critical", "critical"]
    custom = {"critical": 0.9, "warning": 0.6, "info": 0.2}
    assert severity_of(np.array([0.25, 0.75, 0.95]), custom).tolist() == ["info", "warning", "critical"]
    with pytest.raises(InputError, match="critical > warning > info"):
        severity_of(p, {"critical": 0.5, "warning": 0.6, "info": 0.2})


def test_custom_severity_thresholds_apply_to_predictions(delay_models_dir: Path) -> None:
    strict = DelayModel(severity_thresholds={"critical": 0.99, "warning": 0.98, "info": 0.97}).load(delay_models_dir)
    [pred] = strict.predict_records([ORDER])
    assert pred["severity"] == "none"


def test_training_stores_metrics_threshold_and_a_model_card(delay_models_dir: Path, model: DelayModel) -> None:
    meta = model.metadata
    assert 0.0 < meta["threshold"] < 1.0
    holdout = meta["metrics"]["holdout"]
    for key in ("roc_auc", "pr_auc", "accuracy", "brier", "ece"):
        assert key in holdout
    assert holdout["roc_auc"] > meta["metrics"]["baselines"]["prior"]["roc_auc"] + 0.1
    assert meta["training_data"]["fingerprint"]["sha256"]
    assert {"lightgbm", "scikit-learn", "pandas", "numpy", "python"} <= set(meta["libraries"])
    assert model.ref is not None
    card = (model.ref.path / "model_card.md").read_text()
    assert f"{holdout['roc_auc']:.4f}" in card and "logistic regression" in card
    assert json.loads((model.ref.path / "metrics.json").read_text())["holdout"]["roc_auc"] == holdout["roc_auc"]


def test_inverted_labels_flip_the_learned_direction(demo_orders: pd.DataFrame, tmp_path: Path) -> None:
    """Guards against the seed's bug: a model trained with the label inverted would fail the direction test."""
    flipped = demo_orders.assign(is_late=~demo_orders["is_late"])
    trained = train_delay(flipped, DelayTrainConfig(folds=3, max_rows=3000))

    wrong = DelayModel().load(save_delay(trained, tmp_path).path)
    assert wrong.metadata["metrics"]["holdout"]["roc_auc"] > 0.6  # it learns, just the wrong thing
    low, high = wrong.predict_records([ORDER, {**ORDER, "discount_offered": 40}], explain=False)
    assert high["delay_probability"] < low["delay_probability"]


def test_too_few_labelled_rows_is_a_clear_error(demo_orders: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="too few rows"):
        train_delay(demo_orders.head(12))
