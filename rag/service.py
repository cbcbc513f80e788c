"""The knowledge base service: ingestion (packaged policies, admin documents, cases) and search.

``KnowledgeBase(client, embedder)`` works on two Qdrant collections, ``policies`` and ``cases`` (past
resolutions, kept apart so a case is never cited as policy). Everything is synchronous; the server calls
it from a worker thread.

Search is hybrid by default: dense cosine and BM25 result lists fused with reciprocal rank fusion (RRF),
with payload filters. A hit's ``score`` is the cosine similarity between the question and the passage;
``fusion_score`` is the score the hits are ordered by. A relevance gate drops a hit whose score is below
``min_score``, or below ``strong_score`` while sharing no content word with the question, so an
off-topic question returns nothing instead of the least bad passages.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
from qdrant_client import QdrantClient

from rag import sparse
from rag.cases import case_document, case_extra, parse_case
from rag.categories import document_categories, unknown_category_message
from rag.chunks import FILTER_KEYS, Chunk, document_chunks
from rag.documents import Document, DocumentError, load_policy_documents, parse_admin_document, slugify
from rag.embeddings import Embedder
from rag.policy import Policy, get_policy
from rag.store import QdrantStore, SearchMode
from rag.templating import unbacked_numbers

LOG = logging.getLogger(__name__)

Collection = Literal["policies", "cases"]
POLICIES: Final = "policies"
CASES: Final = "cases"
COLLECTIONS: tuple[Collection, ...] = (POLICIES, CASES)
SOURCE_PACKAGED = "packaged"
SOURCE_ADMIN = "admin"
SOURCE_CASE = "case"
MAX_QUERY_CHARS = 2000
MAX_K = 50
DEFAULT_MIN_SCORE = 0.3
DEFAULT_STRONG_SCORE = 0.6
FILTER_ALIASES = {"agent_type": "agents", "agent": "agents", "warehouse_block": "warehouse", "mode_of_shipment": "mode"}


class KnowledgeBaseError(ValueError):
    """Bad input to the knowledge base; the message names the field and what is allowed."""


class PackagedDocumentError(KnowledgeBaseError):
    """A change to a packaged policy document, which is rendered from the policy file (not an admin's to change)."""


@dataclass
class Hit:
    """One search result."""

    text: str
    score: float
    title: str
    section: str
    doc_id: str
    citation_id: str
    collection: str
    fusion_score: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IngestReport:
    """What a policy ingestion changed."""

    added: int = 0
    unchanged: int = 0
    removed: int = 0
    documents: int = 0
    seconds: float = 0.0
    policy_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IngestResult:
    """What ingesting one document changed, its citation ids and any warnings."""

    doc_id: str
    collection: str
    chunks: int
    added: int
    unchanged: int
    removed: int
    citation_ids: list[str]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DocumentInfo:
    """One stored document: identity, category, where it came from and how many sections and chunks it has."""

    doc_id: str
    title: str
    category: str
    source: str
    collection: str
    sections: int
    chunks: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normalise_filter_value(key: str, value: str) -> str:
    value = value.strip()
    if key == "warehouse":
        return value.upper()
    if key == "mode":
        return value.capitalize()
    if key in ("severity", "agents", "category"):
        return value.lower()
    return value


class KnowledgeBase:
    """Policies and past cases in Qdrant, with idempotent ingestion and hybrid search."""

    def __init__(
        self,
        client: QdrantClient,
        embedder: Embedder,
        *,
        policy: Policy | None = None,
        prefix: str = "",
        min_score: float | None = None,
        strong_score: float | None = None,
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.policy = policy or get_policy()
        self.store = QdrantStore(client, embedder.name, embedder.dim, prefix=prefix)
        default_min = getattr(embedder, "min_relevance", DEFAULT_MIN_SCORE)
        self.min_score = float(default_min if min_score is None else min_score)
        default_strong = getattr(embedder, "strong_relevance", DEFAULT_STRONG_SCORE)
        self.strong_score = float(default_strong if strong_score is None else strong_score)
        self._ensured = False
        self._packaged_ids: set[str] | None = None
        # Ingestion reads the existing points, then writes: one writer at a time within the process.
        self._write_lock = threading.RLock()

    # ------------------------------------------------------------------ collections

    def ensure_collections(self) -> list[str]:
        """Create missing collections; raise EmbedderMismatchError on a collection of another embedder."""
        created: list[str] = [name for name in COLLECTIONS if self.store.ensure(name)]
        self._ensured = True
        return created

    def _ready(self) -> None:
        if not self._ensured:
            self.ensure_collections()

    @staticmethod
    def _collection(collection: str) -> Collection:
        for name in COLLECTIONS:
            if collection == name:
                return name
        raise KnowledgeBaseError(f"collection: {collection!r} is not allowed; allowed: {', '.join(COLLECTIONS)}")

    def collection_sizes(self) -> dict[str, int]:
        self._ready()
        return {name: self.store.count(name) for name in COLLECTIONS}

    # ------------------------------------------------------------------ ingestion

    def _sync(
        self, collection: Collection, chunks: Sequence[Chunk], scope: dict[str, list[str]]
    ) -> tuple[int, int, int]:
        """Make the points matching ``scope`` equal to ``chunks``: embed only what is new."""
        with self._write_lock:
            existing = self.store.existing(collection, scope)
            wanted = {c.point_id: c for c in chunks}
            new = [c for pid, c in wanted.items() if pid not in existing]
            stale = [pid for pid in existing if pid not in wanted]
            if new:
                dense = self.embedder.embed([c.embed_text for c in new])
                sparse_vectors = [sparse.document_vector(c.embed_text) for c in new]
                self.store.upsert(collection, new, dense, sparse_vectors)
            removed = self.store.delete_ids(collection, stale)
        return len(new), len(wanted) - len(new), removed

    def packaged_doc_ids(self) -> set[str]:
        if self._packaged_ids is None:
            self._packaged_ids = {d.doc_id for d in load_policy_documents(self.policy)}
        return self._packaged_ids

    def ingest_policy_documents(self) -> IngestReport:
        """Render the packaged documents from the policy and sync them into ``policies`` (idempotent)."""
        started = time.perf_counter()
        self._ready()
        documents = load_policy_documents(self.policy)
        self._packaged_ids = {d.doc_id for d in documents}
        extra = {"policy_version": self.policy.version}
        chunks = [c for d in documents for c in document_chunks(d, POLICIES, SOURCE_PACKAGED, extra)]
        added, unchanged, removed = self._sync(POLICIES, chunks, {"source": [SOURCE_PACKAGED]})
        report = IngestReport(
            added=added,
            unchanged=unchanged,
            removed=removed,
            documents=len(documents),
            seconds=round(time.perf_counter() - started, 4),
            policy_version=self.policy.version,
        )
        LOG.info("policy documents: %s", report)
        return report

    def ingest_document(
        self,
        doc_id: str | None,
        title: str,
        content: str,
        category: str,
        collection: str = POLICIES,
        metadata: dict[str, Any] | None = None,
    ) -> IngestResult:
        """Add or replace an admin document (by ``doc_id``, default: a slug of the title)."""
        coll = self._collection(collection)
        self._ready()
        doc_id = doc_id.strip() if doc_id else slugify(title or "")
        if coll == POLICIES and doc_id in self.packaged_doc_ids():
            raise PackagedDocumentError(
                f"doc_id: {doc_id!r} is a packaged policy document, rendered from the policy file; change "
                f"rag/content and the policy file instead, or choose another doc_id"
            )
        meta = dict(metadata or {})
        for key in ("agents", "mode", "warehouse", "severity"):
            if key in meta:
                values = meta[key] if isinstance(meta[key], list) else [meta[key]]
                norm = [_normalise_filter_value(key, str(v)) for v in values]
                meta[key] = norm if key == "agents" else norm[0]
        category = (category or "").strip()
        if category not in document_categories():
            raise KnowledgeBaseError(unknown_category_message("category", category))
        try:
            document = parse_admin_document(doc_id, title or "", content or "", category, meta)
        except DocumentError as exc:
            raise KnowledgeBaseError(str(exc)) from exc
        source = SOURCE_CASE if coll == CASES else SOURCE_ADMIN
        if coll == CASES:
            for section in document.sections:
                section.citation_prefix = "case"
        result = self._ingest(coll, document, source, {})
        if coll == POLICIES:
            numbers = unbacked_numbers(content, self.policy)
            if numbers:
                stated = ", ".join(f"{n:g}" for n in numbers)
                result.warnings.append(
                    f"content states numbers the policy file does not ({stated}); the policy file "
                    f"(version {self.policy.version}) stays authoritative for guardrails"
                )
        return result

    def _ingest(self, coll: Collection, document: Document, source: str, extra: dict[str, Any]) -> IngestResult:
        chunks = document_chunks(document, coll, source, extra)
        added, unchanged, removed = self._sync(coll, chunks, {"doc_id": [document.doc_id]})
        citations = list(dict.fromkeys(c.payload["citation_id"] for c in chunks))
        return IngestResult(document.doc_id, coll, len(chunks), added, unchanged, removed, citations)

    def delete_document(self, doc_id: str, collection: str = POLICIES) -> int:
        """Remove every chunk of a document; returns how many points were removed (0 if unknown)."""
        coll = self._collection(collection)
        self._ready()
        if coll == POLICIES and doc_id in self.packaged_doc_ids():
            raise PackagedDocumentError(
                f"doc_id: {doc_id!r} is a packaged policy document and would come back at the next start; "
                f"remove it from rag/content instead"
            )
        with self._write_lock:
            ids = self.store.existing(coll, {"doc_id": [doc_id]})
            return self.store.delete_ids(coll, ids)

    def documents(self, collection: str = POLICIES, category: str | None = None) -> list[DocumentInfo]:
        """Every document of ``collection`` (optionally of one category) with its section and chunk counts,
        ordered by category, then title."""
        coll = self._collection(collection)
        if category is not None and category not in document_categories():
            raise KnowledgeBaseError(unknown_category_message("category", category))
        self._ready()
        found: dict[str, DocumentInfo] = {}
        sections: dict[str, set[str]] = {}
        fields = ("doc_id", "title", "category", "source", "section_id")
        for payload in self.store.payloads(coll, fields, {"category": [category]} if category else None):
            doc_id = str(payload.get("doc_id", ""))
            info = found.get(doc_id)
            if info is None:
                info = found[doc_id] = DocumentInfo(doc_id, str(payload.get("title", "")),
                                                    str(payload.get("category", "")), str(payload.get("source", "")),
                                                    coll, 0, 0)  # fmt: skip
            info.chunks += 1
            sections.setdefault(doc_id, set()).add(str(payload.get("section_id", "")))
        for doc_id, info in found.items():
            info.sections = len(sections[doc_id])
        return sorted(found.values(), key=lambda d: (d.category, d.title.lower(), d.doc_id))

    def add_case(self, resolution: dict[str, Any]) -> str:
        """Store a resolution from the deviation workflow in ``cases``; returns its case (doc) id."""
        self._ready()
        record = parse_case(resolution)
        document = case_document(record)
        self._ingest(CASES, document, SOURCE_CASE, case_extra(record))
        return document.doc_id

    # ------------------------------------------------------------------ search

    def _conditions(self, category: str | None, filters: dict[str, Any] | None) -> dict[str, list[str]]:
        conditions: dict[str, list[str]] = {}
        items = dict(filters or {})
        if category is not None:
            items["category"] = category
        for raw_key, raw_value in items.items():
            key = FILTER_ALIASES.get(raw_key, raw_key)
            if key not in FILTER_KEYS:
                allowed = sorted({*FILTER_KEYS, *FILTER_ALIASES})
                raise KnowledgeBaseError(f"filters: unknown key {raw_key!r}; allowed: {', '.join(allowed)}")
            values = raw_value if isinstance(raw_value, list | tuple) else [raw_value]
            clean = [_normalise_filter_value(key, str(v)) for v in values if v is not None and str(v).strip()]
            label = "category" if raw_key == "category" and category is not None else f"filters.{raw_key}"
            if not clean:
                raise KnowledgeBaseError(f"{label}: needs at least one non-empty value")
            if key == "category":
                for value in clean:
                    if value not in document_categories():
                        raise KnowledgeBaseError(unknown_category_message(label, value))
            conditions[key] = clean
        return conditions

    def embed_query(self, query: str) -> tuple[np.ndarray, sparse.SparseVector]:
        return self.embedder.embed([query])[0], sparse.query_vector(query)

    def search(
        self,
        query: str,
        k: int = 5,
        category: str | None = None,
        collection: str = POLICIES,
        filters: dict[str, Any] | None = None,
        *,
        mode: SearchMode = "hybrid",
        min_score: float | None = None,
        gate: bool = True,
    ) -> list[Hit]:
        """Best passages for ``query``; [] when no passage passes the relevance gate.

        ``min_score`` overrides the knowledge base's floor for this call; ``gate=False`` returns the raw
        ranking (used by the evaluation).
        """
        coll = self._collection(collection)
        if not isinstance(query, str) or not query.strip():
            raise KnowledgeBaseError("query: must be a non-empty string")
        if len(query) > MAX_QUERY_CHARS:
            raise KnowledgeBaseError(f"query: at most {MAX_QUERY_CHARS} characters, got {len(query)}")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            raise KnowledgeBaseError(f"k: must be an integer from 1 to {MAX_K}, got {k!r}")
        if mode not in ("hybrid", "dense", "sparse"):
            raise KnowledgeBaseError(f"mode: {mode!r} is not allowed; allowed: hybrid, dense, sparse")
        conditions = self._conditions(category, filters)
        self._ready()
        threshold = self.min_score if min_score is None else min_score
        dense_q, sparse_q = self.embed_query(query)
        points = self.store.query(
            coll, dense_q, sparse_q, mode, k, conditions, prefetch_limit=max(4 * k, 20), applies_to=coll == POLICIES
        )
        query_terms = set(sparse.terms(query))
        hits = []
        for point in points:
            payload = dict(point.payload or {})
            vector = point.vector.get("dense") if isinstance(point.vector, dict) else None
            relevance = float(np.dot(dense_q, np.asarray(vector, dtype=np.float32))) if vector is not None else 0.0
            if gate and not self._relevant(relevance, threshold, query_terms, payload):
                continue
            hits.append(
                Hit(
                    text=str(payload.pop("text", "")),
                    score=round(relevance, 4),
                    title=str(payload.pop("title", "")),
                    section=str(payload.pop("section", "")),
                    doc_id=str(payload.pop("doc_id", "")),
                    citation_id=str(payload.pop("citation_id", "")),
                    collection=coll,
                    fusion_score=round(float(point.score), 6),
                    metadata=payload,
                )
            )
        return hits


    def _relevant(self, score: float, threshold: float, query_terms: set[str], payload: dict[str, Any]) -> bool:
        """Above the floor, and either semantically strong or sharing a content word with the query."""
        if score < threshold:
            return False
        if score >= self.strong_score:
            return True
        passage = f"{payload.get('title', '')} {payload.get('section', '')} {payload.get('text', '')}"
        return bool(query_terms & set(sparse.terms(passage)))


def citation_label(hit: Hit) -> str:
    """``[policy:shipping#upgrades] Shipping policy - Mode upgrades for delayed orders``."""
    section = re.sub(r"\s+", " ", hit.section)
    return f"[{hit.citation_id}] {hit.title} - {section}"
