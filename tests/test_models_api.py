"""Model endpoints on the real app: ``GET /models`` and ``GET /models/{name}`` read tiny models trained in a temp
folder (the small synthetic seed) and answer what their metadata holds: versions, data fingerprints, metrics
against the baselines, feature importance, the delay model's reliability curve, the anomaly score quantiles and the
model card; a version trained before importance and calibration were recorded answers them as null; a model with
no version is 404."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml.anomaly import AnomalyTrainConfig, save_anomaly, train_anomaly
from ml.delay.artifacts import save_delay
from ml.delay.features import FEATURES
from ml.delay.train import DelayTrainConfig, train_delay
from ml.demand.artifacts import save_demand
from ml.demand.features import FEATURE_NAMES
from ml.demand.train import DemandTrainConfig, train_demand
from ml.registry import ModelRef, latest
from ml.synth import generate
from server.app import create_app


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    small = generate(seed=7, scale="small")
    orders = small["orders"]
    sales = small["sales_daily"].rename(columns={"store_id": "store", "sku": "item", "units": "sales"})
    save_delay(train_delay(orders, DelayTrainConfig(folds=3), source="synthetic small"), folder)
    save_demand(train_demand(sales[["date", "store", "item", "sales", "discount"]],
                             DemandTrainConfig(horizon=28, max_rounds=60, train_days=182),
                             source="synthetic small"), folder)  # fmt: skip
    save_anomaly(train_anomaly(orders, AnomalyTrainConfig(n_estimators=50), source="synthetic small"), folder)
    return folder


@pytest.fixture
def serve(settings_factory: Any, database_url: str) -> Callable[[Path], Any]:
    """An httpx client over the real app serving the models of a folder."""

    @asynccontextmanager
    async def start(folder: Path) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings_factory(database_url=database_url, seed_on_start=False,
                                          train_models_on_start=False, models_dir=folder))  # fmt: skip
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
                yield client

    return start


def _ref(folder: Path, name: str) -> ModelRef:
    ref = latest(folder, name)
    assert ref is not None
    return ref


async def test_models_lists_the_latest_versions_and_what_serves(serve: Any, models_dir: Path) -> None:
    async with serve(models_dir) as client:
        response = await client.get("/models")
    assert response.status_code == 200, response.text
    items = {item["name"]: item for item in response.json()["items"]}
    assert list(items) == ["delay", "demand", "anomaly"]
    for name, item in items.items():
        ref = _ref(models_dir, name)
        assert item["version"] == item["serving_version"] == ref.version
        assert item["created_at"] == ref.metadata["created_at"] and item["versions"] == 1
        assert item["task"] == ref.metadata["task"] and item["reason"] is None


async def test_delay_card_metrics_importance_and_reliability_curve(serve: Any, models_dir: Path) -> None:
    meta = _ref(models_dir, "delay").metadata
    async with serve(models_dir) as client:
        card = (await client.get("/models/delay")).json()
    holdout = meta["metrics"]["holdout"]
    assert card["version"] == meta["version"] and card["threshold"] == meta["threshold"]
    assert card["training_data"]["source"] == "synthetic small"
    assert card["training_data"]["rows"] == meta["training_data"]["rows_used"]
    assert card["training_data"]["fingerprint"] == meta["training_data"]["fingerprint"]["sha256"]
    table = card["comparison"]
    assert table["evaluation"] == f"holdout, {holdout['n']} orders"
    assert table["metrics"] == ["roc_auc", "pr_auc", "brier", "ece", "log_loss", "accuracy"]
    assert set(table["lower_is_better"]) == {"brier", "ece", "log_loss"}
    rows = {row["method"]: row for row in table["rows"]}
    mine = rows["LightGBM, calibrated (this model)"]
    assert mine["this_model"] and mine["metrics"]["roc_auc"] == holdout["roc_auc"]
    prior = meta["metrics"]["baselines"]["prior"]["roc_auc"]
    assert rows["class prior"]["metrics"]["roc_auc"] == prior < mine["metrics"]["roc_auc"]
    importance = card["feature_importance"]
    assert importance["kind"] == "gain" and {f["feature"] for f in importance["features"]} == set(FEATURES)
    assert math.isclose(sum(f["share"] for f in importance["features"]), 1.0)
    assert importance["features"][0]["feature"] == "discount_offered"  # the synthetic data's strongest driver
    curve = card["calibration"]
    assert curve["data"] == "holdout" and sum(b["n"] for b in curve["calibrated"]) == holdout["n"]
    for b in curve["calibrated"]:
        assert b["lower"] <= b["mean_predicted"] <= b["upper"] and 0 <= b["observed_rate"] <= 1
    assert card["card_markdown"].startswith(f"# Model card: delay-risk classifier `{meta['version']}`")
    assert card["score_quantiles"] is None and card["metrics"]["rounds"] == meta["metrics"]["rounds"]


async def test_demand_card_is_the_backtest_against_both_baselines(serve: Any, models_dir: Path) -> None:
    meta = _ref(models_dir, "demand").metadata
    backtest = meta["metrics"]["backtest"]
    async with serve(models_dir) as client:
        card = (await client.get("/models/demand")).json()
    table = card["comparison"]
    assert table["metrics"] == ["smape", "wape", "mae", "p90_coverage"]
    assert table["evaluation"] == (f"backtest: the last 28 days ({backtest['holdout_start']} to "
                                   f"{backtest['holdout_end']}) of {backtest['series']} series")  # fmt: skip
    methods = {row["method"]: row["metrics"] for row in table["rows"]}
    assert methods["LightGBM P50 (this model)"]["smape"] == backtest["model"]["smape"]
    assert methods["seasonal naive (last week)"]["wape"] == backtest["seasonal_naive"]["wape"]
    assert methods["same weekday last year"]["mae"] == backtest["same_weekday_last_year"]["mae"]
    assert methods["seasonal naive (last week)"]["p90_coverage"] is None
    data = meta["training_data"]
    assert card["training_data"]["period"] == f"{data['first_date']} to {data['last_date']}"
    importance = card["feature_importance"]
    assert {f["feature"] for f in importance["features"]} == set(FEATURE_NAMES)
    assert card["calibration"] is None and card["threshold"] is None


async def test_anomaly_card_has_score_quantiles_and_split_shares(serve: Any, models_dir: Path) -> None:
    meta = _ref(models_dir, "anomaly").metadata
    async with serve(models_dir) as client:
        card = (await client.get("/models/anomaly")).json()
    assert card["score_quantiles"] == meta["metrics"]["score_quantiles"]
    assert card["threshold"] == meta["threshold"] and card["comparison"] is None
    importance = card["feature_importance"]
    assert importance["kind"] == "splits" and len(importance["features"]) == len(FEATURES)
    assert math.isclose(sum(f["share"] for f in importance["features"]), 1.0)
    assert card["card_markdown"].startswith(f"# Order anomaly detector {meta['version']}")


async def test_an_older_version_lacks_importance_and_calibration_and_a_missing_model_is_404(
    serve: Any, models_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    delay = _ref(models_dir, "delay")
    old = folder / "delay" / delay.version
    shutil.copytree(delay.path, old)
    meta = json.loads((old / "metadata.json").read_text())
    for key in ("feature_importance", "calibration_bins"):
        del meta["metrics"][key]
    (old / "metadata.json").write_text(json.dumps(meta))
    async with serve(folder) as client:
        card = (await client.get("/models/delay")).json()
        missing = await client.get("/models/demand")
        listed = (await client.get("/models")).json()["items"]
        unknown = await client.get("/models/pricing")
    assert card["version"] == delay.version
    assert card["feature_importance"] is None and card["calibration"] is None and card["comparison"]
    assert missing.status_code == 404 and "no 'demand' model under" in missing.json()["error"]["message"]
    assert [(i["name"], i["version"]) for i in listed] == [("delay", delay.version), ("demand", None),
                                                           ("anomaly", None)]  # fmt: skip
    assert unknown.status_code == 422 and unknown.json()["error"]["details"][0]["field"] == "name"


async def test_models_need_a_key(settings_factory: Any, database_url: str, models_dir: Path) -> None:
    app = create_app(settings_factory(database_url=database_url, seed_on_start=False, train_models_on_start=False,
                                      models_dir=models_dir, api_keys="v:viewer"))  # fmt: skip
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rimas.test") as client:
            anonymous = await client.get("/models/delay")
            viewer = await client.get("/models/delay", headers={"X-API-Key": "v"})
    assert anonymous.status_code == 401 and viewer.status_code == 200
