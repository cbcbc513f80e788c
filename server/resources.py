"""The long-lived resources of a running service, opened and closed by the app's lifespan.

Start-up order: database (embedded or external) -> migrations + checkpointer tables -> demo seed when the
database is empty -> models (latest stored versions, trained from the seeded data when missing) ->
connection pool -> checkpointer -> Qdrant + knowledge base (policy file validated, policy documents
ingested when changed) -> graph runtime -> scoring runner (batch jobs, event micro-batches). Shutdown
releases them in reverse order, so a SIGTERM'd server stops its embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from langchain_openai import ChatOpenAI
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg_pool import AsyncConnectionPool
from qdrant_client import QdrantClient

from ml.data import load_orders_db, load_sales_db
from ml.nlu import default_classifier
from ml.startup import ModelStatus, ensure_models
from rag.embeddings import make_embedder
from rag.policy import get_policy
from rag.service import KnowledgeBase
from server.checkpointer import PooledPostgresSaver
from server.db import Database, connect, open_pool
from server.heap import freeze_startup_heap
from server.migrate import migrate
from server.plan_starter import plan_starter
from server.qdrant import open_qdrant
from server.runtime import Runtime
from server.scoring_jobs import ScoringJobs, ScoringSettings
from server.seed import database_is_empty, seed_database
from server.settings import Settings
from tools import customers
from tools import deps as tool_deps
from tools.catalog import load_catalog
from tools.deps import ToolDeps

log = logging.getLogger(__name__)


@dataclass
class Resources:
    """Handles shared by every request; one instance per running app."""

    settings: Settings
    database: Database
    pool: AsyncConnectionPool[Any]
    checkpointer: AsyncPostgresSaver
    qdrant: QdrantClient
    knowledge: KnowledgeBase
    models: dict[str, ModelStatus]
    started_at: float = field(default_factory=time.time)
    runtime: Runtime | None = None
    scoring: ScoringJobs | None = None  # batch jobs and the event micro-batcher (server.scoring_jobs)
    # Qdrant local mode is not thread-safe: knowledge-base calls (run in threads) take this lock.
    knowledge_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    async def open(cls, settings: Settings) -> Resources:
        started = time.perf_counter()
        database = Database(settings)
        url = await asyncio.to_thread(database.start)
        try:
            models = await asyncio.to_thread(_prepare_database, url, settings)
            pool = await open_pool(url, settings)
        except BaseException:
            await asyncio.to_thread(database.stop)
            raise
        try:
            checkpointer = PooledPostgresSaver(pool)
            qdrant = await asyncio.to_thread(open_qdrant, settings)
            knowledge = await asyncio.to_thread(_open_knowledge, qdrant, settings)
        except BaseException:
            await pool.close()
            await asyncio.to_thread(database.stop)
            raise
        log.info(
            "resources ready",
            extra={"database": database.kind, "seconds": round(time.perf_counter() - started, 2)},
        )
        resources = cls(settings, database, pool, checkpointer, qdrant, knowledge, models)
        tool_deps.install(ToolDeps(  # the tools that graphs and routes share run on these
            pool=pool, policy=get_policy(), knowledge=knowledge, knowledge_lock=resources.knowledge_lock,
            models={name: status.model for name, status in models.items() if status.model is not None},
            llm=chat_model(settings),
        ))  # fmt: skip
        try:
            resources.runtime = await Runtime.open(settings, url, pool, checkpointer)
        except BaseException:
            await resources.close()
            raise
        tool_deps.current().plan_starter = plan_starter(resources.runtime)  # the chat may start plans
        resources.scoring = ScoringJobs(pool, ScoringSettings(), resources.runtime)
        resources.scoring.start()
        await asyncio.to_thread(default_classifier)  # the chat's intent classifier: trained once, before a question
        await _warm_chat()
        freeze_startup_heap()
        return resources

    async def close(self) -> None:
        if self.scoring is not None:
            await self.scoring.close()
        if self.runtime is not None:
            try:
                await self.runtime.close()
            except Exception:
                log.exception("graph runtime did not close cleanly")
        tool_deps.install(None)  # after the runs drained: they use the tools to the end
        try:
            await asyncio.to_thread(self.qdrant.close)
        finally:
            try:
                await self.pool.close()
            finally:
                await asyncio.to_thread(self.database.stop)
        log.info("resources closed")


async def _warm_chat() -> None:
    """Compute what the chat caches per data version (the catalog, the customer analytics) before the first
    question rather than during it; an empty database leaves them to the first question (which says why)."""
    started = time.perf_counter()
    try:
        await load_catalog()
        await customers.analytics()
    except Exception as exc:  # no data yet (or it is unreadable): the chat reports it when asked
        log.info("chat caches left cold", extra={"reason": str(exc)})
        return
    log.info("chat caches ready", extra={"seconds": round(time.perf_counter() - started, 2)})


def chat_model(settings: Settings) -> ChatOpenAI | None:
    """The LLM policies' chat model (any OpenAI-compatible server); None without a key: deterministic only."""
    if settings.openai_api_key is None:
        return None
    return ChatOpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url, model=settings.llm_model,
                      timeout=settings.llm_timeout_seconds, max_retries=1)  # fmt: skip


def _open_knowledge(qdrant: QdrantClient, settings: Settings) -> KnowledgeBase:
    api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    embedder = make_embedder(api_key, settings.openai_base_url, settings.embedding_model)
    knowledge = KnowledgeBase(qdrant, embedder, policy=get_policy())
    knowledge.ensure_collections()
    report = knowledge.ingest_policy_documents()
    log.info("knowledge base ready", extra={"embedder": embedder.name, "ingest": str(report)})
    return knowledge


def _prepare_database(url: str, settings: Settings) -> dict[str, ModelStatus]:
    """Migrate, seed an empty database, then load (or train) the models; returns the model statuses."""
    with connect(url) as conn:
        migrate(conn)
        if settings.seed_on_start and database_is_empty(conn):
            log.info("database is empty: seeding demo data", extra={"scale": settings.seed_scale})
            seed_database(conn, seed=settings.seed, scale=settings.seed_scale)
        thresholds = get_policy().severity.thresholds.model_dump()
        return ensure_models(
            settings.resolved_models_dir,
            lambda: load_orders_db(conn, labelled_only=True),
            lambda: load_sales_db(conn),
            settings.train_models_on_start,
            severity_thresholds=thresholds,
        )
