"""Qdrant access for the knowledge base: collections, embedder guard, points, filters and queries.

Each collection has a named dense vector ``dense`` (cosine) and a sparse vector ``bm25`` with Qdrant's
IDF modifier. The embedder that filled a collection is recorded in the collection's metadata; opening it
with a different embedder raises :class:`EmbedderMismatchError` rather than mixing vector spaces. The
same code runs against local mode (``QdrantClient(path=...)`` / ``":memory:"``) and a server
(``QdrantClient(url=...)``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
from qdrant_client import QdrantClient, models

from rag.chunks import Chunk
from rag.sparse import SparseVector

LOG = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "bm25"
SCHEMA_VERSION = 1
# Reciprocal rank fusion, in Qdrant's form 1 / (k + rank / weight - 1) summed over the prefetches. Tuned on the
# tuning questions of the retrieval evaluation (rag/evaluation.py; held-out questions not consulted): the
# BM25 list weighs twice the dense list, and a small k lets a passage ranked first by one list win. Weights
# need Qdrant 1.17 or later.
RRF_K = 2
RRF_WEIGHTS = (1.0, 2.0)  # (dense, bm25), the order of the prefetches below
SearchMode = Literal["hybrid", "dense", "sparse"]
KEYWORD_FIELDS = ("doc_id", "source", "category", "agents", "mode", "warehouse", "severity", "citation_id")
# Filters on these keys also match points that do not set the key (a general section applies to all).
APPLIES_TO_KEYS = ("agents", "mode", "warehouse", "severity")


class EmbedderMismatchError(RuntimeError):
    """A collection was built with another embedder (or another dimension) than the one configured."""


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices, values=vector.values)


def build_filter(conditions: dict[str, list[str]] | None, applies_to: bool = True) -> models.Filter | None:
    """AND over keys; within a key, any of the values.

    With ``applies_to``, ``APPLIES_TO_KEYS`` also accept a point that does not set the key (a general
    policy section applies to every mode); without it (cases, which always set them) matching is exact.
    """
    if not conditions:
        return None
    must: list[models.Condition] = []
    for key, values in conditions.items():
        match = models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))
        if applies_to and key in APPLIES_TO_KEYS:
            must.append(
                models.Filter(should=[match, models.IsEmptyCondition(is_empty=models.PayloadField(key=key))])
            )
        else:
            must.append(match)
    return models.Filter(must=must)


class QdrantStore:
    """Thin typed wrapper over a :class:`QdrantClient` for one embedder."""

    def __init__(self, client: QdrantClient, embedder_name: str, dim: int, prefix: str = "") -> None:
        self.client = client
        self.embedder_name = embedder_name
        self.dim = dim
        self.prefix = prefix

    def physical(self, collection: str) -> str:
        return f"{self.prefix}{collection}"

    # ------------------------------------------------------------------ collections

    def ensure(self, collection: str) -> bool:
        """Create the collection if missing (returns True) or check it was built by this embedder."""
        name = self.physical(collection)
        if self.client.collection_exists(name):
            self._check_compatible(name)
            return False
        self.client.create_collection(
            collection_name=name,
            vectors_config={DENSE: models.VectorParams(size=self.dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata={"embedder": self.embedder_name, "dim": self.dim, "schema": SCHEMA_VERSION},
        )
        with warnings.catch_warnings():
            # Local mode ignores payload indexes (and says so); a server uses them for filtered search.
            warnings.simplefilter("ignore", UserWarning)
            for field in KEYWORD_FIELDS:
                self.client.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
        LOG.info("created collection %s for embedder %s (%d dims)", name, self.embedder_name, self.dim)
        return True

    def _check_compatible(self, name: str) -> None:
        info = self.client.get_collection(name)
        meta = info.config.metadata or {}
        recorded = meta.get("embedder")
        if recorded is None:
            raise EmbedderMismatchError(
                f"collection {name!r} has no embedder recorded: it was not created by RIMAS; "
                f"use another QDRANT collection prefix or delete it"
            )
        if recorded != self.embedder_name or int(meta.get("dim", -1)) != self.dim:
            raise EmbedderMismatchError(
                f"collection {name!r} was built with embedder {recorded!r} ({meta.get('dim')} dims) but the "
                f"configured embedder is {self.embedder_name!r} ({self.dim} dims). Vectors from different "
                f"embedders cannot be compared: configure the same embedder (OPENAI_API_KEY set or unset as "
                f"when it was built), or delete the collection (or point QDRANT_URL/the local path elsewhere) "
                f"to rebuild it."
            )

    def count(self, collection: str, conditions: dict[str, list[str]] | None = None) -> int:
        result = self.client.count(self.physical(collection), count_filter=build_filter(conditions), exact=True)
        return int(result.count)

    # ------------------------------------------------------------------ points

    def existing(self, collection: str, conditions: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
        """Point id -> payload (doc_id, content_hash, citation_id) for every point matching the filter."""
        found: dict[str, dict[str, Any]] = {}
        offset: Any = None
        while True:
            points, offset = self.client.scroll(
                self.physical(collection),
                scroll_filter=build_filter(conditions),
                limit=512,
                offset=offset,
                with_payload=["doc_id", "content_hash", "citation_id"],
                with_vectors=False,
            )
            for point in points:
                found[str(point.id)] = dict(point.payload or {})
            if offset is None:
                return found

    def payloads(
        self, collection: str, fields: Sequence[str], conditions: dict[str, list[str]] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The ``fields`` of the payload of every point matching the filter, read in pages of 512 (no vectors)."""
        offset: Any = None
        while True:
            points, offset = self.client.scroll(
                self.physical(collection),
                scroll_filter=build_filter(conditions, applies_to=False),
                limit=512,
                offset=offset,
                with_payload=list(fields),
                with_vectors=False,
            )
            for point in points:
                yield dict(point.payload or {})
            if offset is None:
                return

    def upsert(
        self, collection: str, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVector]
    ) -> None:
        points = [
            models.PointStruct(
                id=chunk.point_id,
                vector={DENSE: dense[i].tolist(), SPARSE: _sparse(sparse[i])},
                payload=chunk.payload,
            )
            for i, chunk in enumerate(chunks)
        ]
        for start in range(0, len(points), 256):
            self.client.upsert(self.physical(collection), points=points[start : start + 256], wait=True)

    def delete_ids(self, collection: str, ids: Iterable[str]) -> int:
        id_list: list[models.ExtendedPointId] = list(ids)
        if id_list:
            self.client.delete(
                self.physical(collection), points_selector=models.PointIdsList(points=id_list), wait=True
            )
        return len(id_list)

    # ------------------------------------------------------------------ queries

    def query(
        self,
        collection: str,
        dense: np.ndarray,
        sparse: SparseVector,
        mode: SearchMode,
        limit: int,
        conditions: dict[str, list[str]] | None,
        prefetch_limit: int,
        applies_to: bool = True,
    ) -> list[models.ScoredPoint]:
        """Top points by hybrid RRF, dense cosine or BM25, with their dense vectors for relevance."""
        name = self.physical(collection)
        flt = build_filter(conditions, applies_to)
        has_terms = bool(sparse.indices)
        common: dict[str, Any] = {"with_payload": True, "with_vectors": [DENSE], "limit": limit}
        if mode == "dense" or (mode == "hybrid" and not has_terms):
            return self.client.query_points(name, query=dense.tolist(), using=DENSE, query_filter=flt, **common).points
        if mode == "sparse":
            if not has_terms:
                return []
            return self.client.query_points(
                name, query=_sparse(sparse), using=SPARSE, query_filter=flt, **common
            ).points
        # The filter goes into both prefetches; the fusion only re-ranks what they return.
        prefetch = [
            models.Prefetch(query=dense.tolist(), using=DENSE, limit=prefetch_limit, filter=flt),
            models.Prefetch(query=_sparse(sparse), using=SPARSE, limit=prefetch_limit, filter=flt),
        ]
        return self.client.query_points(
            name, prefetch=prefetch, query=models.RrfQuery(rrf=models.Rrf(k=RRF_K, weights=list(RRF_WEIGHTS))), **common
        ).points
