"""Fixtures of the deviation graph tests: the tools' resources on this module's database (a real pool, the packaged
policy, a knowledge base in Qdrant's in-memory local mode with the policy documents ingested), the graph compiled
with the service's Postgres saver, and a builder of deviations stored the way the scoring pipeline stores them."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from qdrant_client import QdrantClient

from graphs.deviation.graph import build_graph
from rag.embeddings import load_static_embedder
from rag.policy import get_policy
from rag.service import KnowledgeBase
from server.checkpointer import PooledPostgresSaver
from server.db import CONNECTION_KWARGS
from tools import deps as tool_deps
from tools.deps import ToolDeps

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def knowledge() -> KnowledgeBase:
    kb = KnowledgeBase(QdrantClient(":memory:"), load_static_embedder(), policy=get_policy())
    kb.ensure_collections()
    kb.ingest_policy_documents()
    return kb


@pytest.fixture(scope="module")
async def deps(database_url: str, knowledge: KnowledgeBase) -> AsyncIterator[ToolDeps]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url, min_size=1, max_size=6, kwargs=CONNECTION_KWARGS, open=False
    )
    await pool.open(wait=True, timeout=30)
    installed = ToolDeps(pool=pool, knowledge=knowledge)
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
def deviation(db: psycopg.Connection[Any]) -> Callable[..., dict[str, Any]]:
    """Store an external order, its prediction and its deviation (as tools.scoring writes them); returns ids.

    Defaults: a paid Road order of 400 USD, 7 days past its promised date and still in transit, P(late) 0.86,
    critical."""

    def make(*, severity: str = "critical", probability: float = 0.86, days_late: int = 7,
             reasons: list[str] | None = None, **fields: Any) -> dict[str, Any]:  # fmt: skip
        number = next(_numbers)
        order_id, customer = f"EXT-{number}-{uuid.uuid4().hex[:6]}", f"C{number:05d}"
        today = dt.datetime.now(dt.UTC).date()
        data = {
            "order_id": order_id, "customer_id": customer, "warehouse_block": "C", "mode_of_shipment": "Road",
            "customer_care_calls": 2, "customer_rating": 3, "cost_of_product": 420, "prior_purchases": 4,
            "product_importance": "high", "gender": "M", "discount_offered": 5, "weight_in_gms": 2500,
            "order_value": 400.0, "payment_status": "paid", "order_status": "shipped", "carrier_name": "Trailway",
            "order_date": (today - dt.timedelta(days=days_late + 6)).isoformat(),
            "promised_delivery_date": (today - dt.timedelta(days=days_late)).isoformat(),
            "ship_date": (today - dt.timedelta(days=days_late + 4)).isoformat(),
            **fields,
        }  # fmt: skip
        db.execute(
            "INSERT INTO order_inputs (order_id, customer_ref, data, source) VALUES (%s, %s, %s, 'api')",
            (order_id, customer, Jsonb(data)),
        )
        db.execute(
            "INSERT INTO predictions (order_id, source, delay_probability, severity, model_version, top_features, "
            "features) VALUES (%s, 'api', %s, %s, 'test-model', %s, '{}'::jsonb)",
            (order_id, probability, severity, Jsonb([{"feature": "mode_of_shipment", "text": "sending by road"}])),
        )
        deviation_id = str(uuid.uuid4())
        db.execute(
            "INSERT INTO deviations (deviation_id, order_id, severity, reasons, delay_probability) "
            "VALUES (%s, %s, %s, %s, %s)",
            (deviation_id, order_id, severity, Jsonb(reasons or [f"delay probability {probability:.2f} above the "
                                                                 "critical threshold 0.7"]), probability),
        )  # fmt: skip
        return {"deviation_id": deviation_id, "order_id": order_id, "customer": customer}

    return make
