"""Fixtures of the chat tests: this module's database seeded with the small synthetic data, small demand and delay
models trained on it in a temp folder, the tools' resources on that database with the models and the policy
knowledge base (Qdrant in-memory local mode) loaded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool
from qdrant_client import QdrantClient

from ml.data import load_orders_db, load_sales_db
from ml.delay.artifacts import save_delay
from ml.delay.model import DelayModel
from ml.delay.train import DelayTrainConfig, train_delay
from ml.demand.artifacts import save_demand
from ml.demand.model import DemandModel
from ml.demand.train import DemandTrainConfig, train_demand
from rag.embeddings import load_static_embedder
from rag.policy import get_policy
from rag.service import KnowledgeBase
from server.db import CONNECTION_KWARGS, connect
from server.seed import seed_database
from tools import deps as tool_deps
from tools.deps import ToolDeps


@pytest.fixture(scope="module")
def seeded_url(database_url: str) -> str:
    with connect(database_url) as conn:
        seed_database(conn, seed=7, scale="small")
    return database_url


@pytest.fixture(scope="module")
def models_dir(seeded_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demand model (horizon 28) and a delay model trained on the seeded data, stored as the server stores them."""
    folder = tmp_path_factory.mktemp("models")
    with connect(seeded_url) as conn:
        sales, orders = load_sales_db(conn), load_orders_db(conn)
    save_demand(train_demand(sales, DemandTrainConfig(horizon=28, max_rounds=60, train_days=182),
                             source="small seed"), folder)  # fmt: skip
    save_delay(train_delay(orders, DelayTrainConfig(folds=3), source="small seed"), folder)
    return folder


@pytest.fixture(scope="module")
async def deps(seeded_url: str, models_dir: Path) -> AsyncIterator[ToolDeps]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        seeded_url, min_size=1, max_size=6, kwargs=CONNECTION_KWARGS, open=False
    )
    await pool.open(wait=True, timeout=30)
    knowledge = KnowledgeBase(QdrantClient(":memory:"), load_static_embedder(), policy=get_policy())
    knowledge.ensure_collections()
    knowledge.ingest_policy_documents()
    installed = ToolDeps(pool=pool, knowledge=knowledge, models={
        "demand": DemandModel().load(models_dir), "delay": DelayModel().load(models_dir)})  # fmt: skip
    tool_deps.install(installed)
    try:
        yield installed
    finally:
        tool_deps.install(None)
        await pool.close()


@pytest.fixture
async def chat(deps: ToolDeps) -> Any:
    """The chat graph on the Postgres saver (threads remember the conversation)."""
    from graphs.chat.graph import build_graph
    from server.checkpointer import PooledPostgresSaver

    return build_graph(checkpointer=PooledPostgresSaver(deps.pool))


REPO = Path(__file__).resolve().parents[2]
KEYS = {"viewer": "view-key", "operator": "op-key", "approver": "appr-key", "admin": "admin-key"}
API_KEYS = ",".join(f"{role}-1:{key}:{role}" for role, key in KEYS.items())


@pytest.fixture
async def served(settings_factory: Any, seeded_url: str, models_dir: Path) -> AsyncIterator[dict[str, Any]]:
    """The app (lifespan run) on the seeded database with the test models; one httpx client per role."""
    import httpx

    from server.app import create_app

    settings = settings_factory(database_url=seeded_url, seed_on_start=False, train_models_on_start=False,
                                models_dir=models_dir, api_keys=API_KEYS,
                                langgraph_config=REPO / "langgraph.json")  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients = {role: httpx.AsyncClient(transport=transport, base_url="http://rimas.test", timeout=60,
                                           headers={"x-api-key": key}) for role, key in KEYS.items()}  # fmt: skip
        try:
            yield clients
        finally:
            for client in clients.values():
                await client.aclose()
