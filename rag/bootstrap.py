"""Start-up helpers: open Qdrant (server or local mode), choose the embedder, validate the policy, ingest.

The server's lifespan can do everything with one call::

    kb, report = start_knowledge_base(qdrant_url=settings.qdrant_url, path=data_dir / "qdrant",
                                      openai_api_key=settings.openai_api_key, ...)

With ``qdrant_url`` the same code talks to a Qdrant server; without it, to local mode under ``path``
(or in memory when ``path`` is ``":memory:"``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from qdrant_client import QdrantClient

from rag.embeddings import make_embedder
from rag.policy import get_policy
from rag.service import IngestReport, KnowledgeBase

LOG = logging.getLogger(__name__)


def make_client(
    qdrant_url: str | None = None, path: str | Path | None = None, api_key: str | None = None
) -> QdrantClient:
    """A Qdrant client: the server at ``qdrant_url``, else local mode in ``path`` (default in memory)."""
    if qdrant_url:
        return QdrantClient(url=qdrant_url, api_key=api_key or None)
    if path is None or str(path) == ":memory:":
        return QdrantClient(":memory:")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(folder))


def start_knowledge_base(
    *,
    qdrant_url: str | None = None,
    path: str | Path | None = None,
    qdrant_api_key: str | None = None,
    openai_api_key: str | None = None,
    openai_base_url: str | None = None,
    embedding_model: str | None = None,
    ingest: bool = True,
) -> tuple[KnowledgeBase, IngestReport | None]:
    """Validate the policy file, open the store, check the embedder, and ingest the policy documents.

    Raises :class:`rag.policy.PolicyError` for an invalid policy file and
    :class:`rag.store.EmbedderMismatchError` for a store built with another embedder.
    """
    policy = get_policy()
    client = make_client(qdrant_url, path, qdrant_api_key)
    embedder = make_embedder(openai_api_key, openai_base_url, embedding_model)
    kb = KnowledgeBase(client, embedder, policy=policy)
    kb.ensure_collections()
    report = kb.ingest_policy_documents() if ingest else None
    LOG.info("knowledge base ready: policy %s, embedder %s, %s", policy.version, embedder.name, report)
    return kb, report
