"""Fixtures of the planning tests: this module's database seeded with the small synthetic data (3 stores x 8 items x
400 days of sales), a small demand model trained on it in a temp folder (horizon 28), the tools' resources on that
database with the model loaded, the graph compiled with the service's Postgres saver, and the served app with one
API key per role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from graphs.planning.graph import build_graph
from ml.data import load_sales_db
from ml.demand.artifacts import save_demand
from ml.demand.model import DemandModel
from ml.demand.train import DemandTrainConfig, train_demand
from server.app import create_app
from server.checkpointer import PooledPostgresSaver
from server.db import CONNECTION_KWARGS, connect
from server.seed import seed_database
from tools import deps as tool_deps
from tools.deps import ToolDeps

REPO = Path(__file__).resolve().parents[2]
KEYS = {"viewer": "view-key", "operator": "op-key", "approver": "appr-key", "admin": "admin-key"}
API_KEYS = ",".join(f"{role}-1:{key}:{role}" for role, key in KEYS.items())


@pytest.fixture(scope="module")
def seeded_url(database_url: str) -> str:
    with connect(database_url) as conn:
        seed_database(conn, seed=7, scale="small")
    return database_url


@pytest.fixture(scope="module")
def models_dir(seeded_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demand model (horizon 28) trained on the seeded sales, stored the way the server stores models."""
    folder = tmp_path_factory.mktemp("models")
    with connect(seeded_url) as conn:
        sales = load_sales_db(conn)
    save_demand(train_demand(sales, DemandTrainConfig(horizon=28, max_rounds=60, train_days=182),
                             source="small seed"), folder)  # fmt: skip
    return folder


@pytest.fixture(scope="module")
async def deps(seeded_url: str, models_dir: Path) -> AsyncIterator[ToolDeps]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        seeded_url, min_size=1, max_size=6, kwargs=CONNECTION_KWARGS, open=False
    )
    await pool.open(wait=True, timeout=30)
    installed = ToolDeps(pool=pool, models={"demand": DemandModel().load(models_dir)})
    tool_deps.install(installed)
    try:
        yield installed
    finally:
        tool_deps.install(None)
        await pool.close()


@pytest.fixture
async def graph(deps: ToolDeps) -> Any:
    return build_graph(checkpointer=PooledPostgresSaver(deps.pool))


@pytest.fixture
async def served(
    settings_factory: Callable[..., Any], seeded_url: str, models_dir: Path
) -> AsyncIterator[tuple[Any, dict[str, httpx.AsyncClient]]]:
    settings = settings_factory(database_url=seeded_url, seed_on_start=False, train_models_on_start=False,
                                models_dir=models_dir, api_keys=API_KEYS,
                                langgraph_config=REPO / "langgraph.json")  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients = {role: httpx.AsyncClient(transport=transport, base_url="http://rimas.test", timeout=60,
                                           headers={"x-api-key": key}) for role, key in KEYS.items()}  # fmt: skip
        try:
            yield app, clients
        finally:
            for client in clients.values():
                await client.aclose()
