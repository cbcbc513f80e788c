"""Fixtures of the scoring tests: tiny delay and anomaly models trained in a temp dir, the tools' resources on
this module's database, enriched orders as upstream sends them, and the app with keys per role."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from ml.anomaly import AnomalyModel, AnomalyTrainConfig, save_anomaly, train_anomaly
from ml.delay.artifacts import save_delay
from ml.delay.features import canonical_columns
from ml.delay.model import DelayModel, Scored
from ml.delay.train import DelayTrainConfig, train_delay
from ml.synth import generate
from rag.policy import get_policy
from server.app import create_app
from server.db import CONNECTION_KWARGS
from tools import deps as tool_deps
from tools.deps import ToolDeps

KEYS = {"viewer": "view-key", "operator": "op-key", "approver": "appr-key", "admin": "admin-key"}
API_KEYS = ",".join(f"{role}-1:{key}:{role}" for role, key in KEYS.items())
STUB_GRAPH = Path(__file__).parent / "stubgraphs" / "deviation.py"
TABLES = "order_events, deviations, predictions, order_inputs, batch_jobs"

#: One order in the seed's enriched schema, as upstream sends it (the base every test changes a field of).
BASE_ORDER: dict[str, Any] = {
    "order_id": "EXT-1",
    "customer_id": "C00123",
    "order_date": "2026-10-20",
    "promised_delivery_date": "2026-10-25",
    "ship_date": "2026-10-21",
    "delivery_date": None,
    "warehouse_block": "B",
    "mode_of_shipment": "Road",
    "carrier_name": "Trailway",
    "customer_care_calls": 3,
    "customer_rating": 4,
    "prior_purchases": 3,
    "gender": "F",
    "product_importance": "medium",
    "cost_of_product": 180.0,
    "discount_offered": 5,
    "weight_in_gms": 4200,
    "payment_status": "paid",
    "order_status": "shipped",
}


def order(**changes: Any) -> dict[str, Any]:
    """:data:`BASE_ORDER` with ``changes``."""
    return {**BASE_ORDER, **changes}


def to_csv(rows: list[dict[str, Any]] | pd.DataFrame, bom: bool = False) -> bytes:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return (("\ufeff" if bom else "") + buffer.getvalue()).encode()


class DiscountAsRisk:
    """A delay model whose P(late) is ``discount_offered / 100``, so a test picks each order's severity exactly
    (validation, explanations and the version come from the real tiny model)."""

    name = "delay"

    def __init__(self, real: DelayModel) -> None:
        self.real = real
        self.model_version = "test-discount-as-risk"
        self.features = real.features

    def score(self, frame: pd.DataFrame, *, explain: bool = True, with_features: bool = False) -> Scored:
        scored = self.real.score(frame, explain=explain, with_features=with_features)
        discount = pd.to_numeric(canonical_columns(frame).loc[scored.predictions.index, "discount_offered"])
        scored.predictions["delay_probability"] = (discount / 100).to_numpy(dtype=float)
        scored.predictions["model_version"] = self.model_version
        return scored


@pytest.fixture(scope="session")
def demo_orders() -> pd.DataFrame:
    return generate(seed=7, scale="demo")["orders"]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, demo_orders: pd.DataFrame) -> Path:
    """A models directory with a small delay model and a small anomaly detector (a few seconds)."""
    models = tmp_path_factory.mktemp("scoring-models")
    save_delay(train_delay(demo_orders, DelayTrainConfig(folds=3, max_rows=4000), source="synth demo"), models)
    save_anomaly(train_anomaly(demo_orders, AnomalyTrainConfig(n_estimators=50), source="synth demo"), models)
    return models


@pytest.fixture(scope="session")
def delay_model(tiny_models: Path) -> DelayModel:
    return DelayModel().load(tiny_models)


@pytest.fixture(scope="session")
def anomaly_model(tiny_models: Path) -> AnomalyModel:
    return AnomalyModel().load(tiny_models)


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    opened: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url, min_size=1, max_size=4, kwargs=CONNECTION_KWARGS, open=False
    )
    await opened.open(wait=True)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def clean(pool: AsyncConnectionPool[Any]) -> None:
    """Empty the scoring tables (the module's database is shared by its tests)."""
    async with pool.connection() as conn:
        await conn.execute(f"TRUNCATE {TABLES} CASCADE")


@pytest.fixture
def deps(
    pool: AsyncConnectionPool[Any], delay_model: DelayModel, anomaly_model: AnomalyModel, clean: None
) -> Iterator[ToolDeps]:
    """The tools' resources with the real tiny models, installed for the test."""
    installed = ToolDeps(pool=pool, policy=get_policy(), models={"delay": delay_model, "anomaly": anomaly_model})
    tool_deps.install(installed)
    yield installed
    tool_deps.install(None)


@pytest.fixture
def risk_deps(deps: ToolDeps, delay_model: DelayModel) -> ToolDeps:
    """As :func:`deps`, with P(late) = discount / 100."""
    deps.models = {**deps.models, "delay": DiscountAsRisk(delay_model)}
    return deps


async def rows(pool: AsyncConnectionPool[Any], query: str, *params: Any) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(query, params or None)
        return list(await cur.fetchall())


# -- the app ---------------------------------------------------------------------------------------------------


@dataclass
class Api:
    app: FastAPI
    clients: dict[str, httpx.AsyncClient]

    def __getitem__(self, role: str) -> httpx.AsyncClient:
        return self.clients[role]

    @property
    def resources(self) -> Any:
        return self.app.state.resources


@pytest.fixture
def make_api(
    settings_factory: Callable[..., Any], database_url: str, tiny_models: Path, tmp_path: Path
) -> Callable[..., Any]:
    """Open the app (keys per role, the tiny models, the stub ``deviation`` graph) as an async context."""
    import contextlib

    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"dependencies": ["."], "graphs": {"deviation": f"{STUB_GRAPH}:graph"}}))

    @contextlib.asynccontextmanager
    async def opened(**overrides: Any) -> AsyncIterator[Api]:
        values: dict[str, Any] = {
            "database_url": database_url,
            "seed_on_start": False,
            "api_keys": API_KEYS,
            "train_models_on_start": False,
            "models_dir": tiny_models,
            "langgraph_config": config,
        }
        app = create_app(settings_factory(**{**values, **overrides}))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            clients = {
                role: httpx.AsyncClient(transport=transport, base_url="http://rimas.test", headers={"x-api-key": key})
                for role, key in KEYS.items()
            }
            clients["anonymous"] = httpx.AsyncClient(transport=transport, base_url="http://rimas.test")
            try:
                yield Api(app, clients)
            finally:
                for client in clients.values():
                    await client.aclose()

    return opened
