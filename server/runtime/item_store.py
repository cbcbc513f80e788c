"""The LangGraph Store of the service: LangGraph's ``AsyncPostgresStore`` over the shared connection pool.

Graphs read and write it as their ``store`` (long-term memory across threads), and ``/store/*`` serves it to
clients (:mod:`server.routes.store`). Semantic search (``query``) runs on pgvector with the knowledge base's
embedder (:func:`rag.embeddings.make_embedder`: OpenAI when a key is set, else the packaged offline model),
indexing each item's whole value (``fields: ["$"]``) unless a put names other fields or ``index: false``.

The store's migrations (``setup()``) run under a PostgreSQL advisory lock, so servers and workers starting
together do not race on them. When pgvector is missing, the embedder does not answer, or ``store_vectors`` was
built by an embedder of other dimensions (the vectors of one embedder mean nothing to another), the store opens
without its vector index: everything but ``query`` works (``/store/items/search`` answers 503 to a query), and
the log says why.

Items whose ``ttl`` (minutes) has passed are never returned, and a sweeper deletes them every few minutes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from langgraph.store.base import BaseStore, TTLConfig
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.postgres.base import PostgresIndexConfig
from psycopg_pool import AsyncConnectionPool

from rag.embeddings import Embedder, EmbeddingError, make_embedder
from server.settings import Settings

log = logging.getLogger(__name__)

_SETUP_LOCK = 0x5249_4D53  # "RIMS": the store's migrations, one process at a time
_LOCK_TIMEOUT_S = 120.0
TTL: TTLConfig = {"refresh_on_read": True, "omit_expired": True, "sweep_interval_minutes": 5}
_VECTOR_DIMS = (
    "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass('store_vectors') AND attname = 'embedding'"
)


class ItemStoreError(RuntimeError):
    """The store's migrations could not run (the setup lock stayed taken)."""


def index_config(embedder: Embedder) -> PostgresIndexConfig:
    """The vector index over ``embedder``: its dimensions, a sync embedding function (LangGraph runs it in a
    thread for async calls) and the whole value as the default field."""

    def embed(texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = embedder.embed(list(texts)).tolist()
        return vectors

    return {"dims": embedder.dim, "embed": embed, "fields": ["$"]}


async def open_item_store(pool: AsyncConnectionPool[Any], settings: Settings) -> AsyncPostgresStore:
    """The store over ``pool`` (autocommit, dict rows: the service's pool settings), migrated, with semantic
    search on the configured embedder when pgvector allows it, and its TTL sweeper started."""
    try:
        embedder = await asyncio.to_thread(_embedder, settings)
    except EmbeddingError as exc:  # an OpenAI-compatible server that does not answer its dimension probe
        log.error("item store: semantic search is off: the embedder is unavailable", extra={"error": str(exc)})
        embedder = None
    async with pool.connection() as conn:
        await _lock(conn)
        try:
            await AsyncPostgresStore(conn).setup()  # the items table
            index = await _vector_setup(conn, index_config(embedder), embedder.name) if embedder else None
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
    store = AsyncPostgresStore(pool, index=index, ttl=TTL)
    await store.start_ttl_sweeper()
    log.info("item store ready", extra={"semantic_search": index is not None,
                                        "embedder": embedder.name if embedder and index else None})  # fmt: skip
    return store


def _embedder(settings: Settings) -> Embedder:
    """The knowledge base's embedder, its dimensions known (an OpenAI model of unknown size is asked once)."""
    api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    embedder = make_embedder(api_key, settings.openai_base_url, settings.embedding_model)
    embedder.dim  # noqa: B018  (a network call for an unlisted OpenAI-compatible model: here, off the event loop)
    return embedder


async def close_item_store(store: BaseStore) -> None:
    """Stop the TTL sweeper of a store :func:`open_item_store` opened (the pool is the caller's)."""
    if isinstance(store, AsyncPostgresStore):
        await store.stop_ttl_sweeper(timeout=5)


async def _vector_setup(
    conn: psycopg.AsyncConnection[Any], index: PostgresIndexConfig, embedder_name: str
) -> PostgresIndexConfig | None:
    """Run the vector migrations; the index to use, or None (logged) when semantic search cannot work here."""
    try:
        await AsyncPostgresStore(conn, index=index).setup()
    except psycopg.Error as exc:  # no pgvector on this server, or no right to create the extension
        log.error("item store: semantic search is off: the vector migrations failed (is pgvector installed?)",
                  extra={"error": str(exc)})  # fmt: skip
        return None
    stored = await _value(conn, _VECTOR_DIMS)
    stored = index["dims"] if stored is None else int(stored)
    if stored != index["dims"]:
        log.error("item store: semantic search is off: store_vectors holds vectors of another embedder; drop the "
                  "table store_vectors (and its rows in vector_migrations) to index the items again from new puts",
                  extra={"stored_dims": stored, "embedder": embedder_name, "dims": index["dims"]})  # fmt: skip
        return None
    return index


async def _lock(conn: psycopg.AsyncConnection[Any]) -> None:
    """Take the setup lock by polling: a waiter must not sit in a statement, because the store's ``CREATE INDEX
    CONCURRENTLY`` waits for every open transaction and would deadlock with it."""
    deadline = time.monotonic() + _LOCK_TIMEOUT_S
    while not await _value(conn, "SELECT pg_try_advisory_lock(%s)", (_SETUP_LOCK,)):
        if time.monotonic() > deadline:
            raise ItemStoreError(f"another process held the item store's setup lock for over {_LOCK_TIMEOUT_S:.0f}s")
        await asyncio.sleep(0.05)


async def _value(conn: psycopg.AsyncConnection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row (None without rows), whatever the connection's row factory."""
    row = await (await conn.execute(query, params)).fetchone()
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
