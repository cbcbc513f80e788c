"""Knowledge base: hybrid search over policies and past cases with citations; admin ingestion and deletion."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Path, Query, status

from rag.documents import DOC_ID_PATTERN
from rag.schemas import (
    KnowledgeHit,
    KnowledgeIngestRequest,
    KnowledgeSearchRequest,
    KnowledgeSearchResponse,
)
from rag.service import IngestResult, KnowledgeBaseError
from server.auth import Admin, Viewer
from server.deps import ResourcesDep
from server.errors import ApiError
from server.resources import Resources

router = APIRouter(prefix="/knowledge", tags=["knowledge"])

T = TypeVar("T")


async def _call(res: Resources, fn: Callable[[], T]) -> T:
    """Run a knowledge-base call in a thread, one at a time; its input errors become 422."""
    async with res.knowledge_lock:
        try:
            return await asyncio.to_thread(fn)
        except KnowledgeBaseError as exc:
            raise ApiError(422, "validation_error", str(exc)) from exc


@router.post("/search", response_model=KnowledgeSearchResponse, summary="Search policies or past cases")
async def search(body: KnowledgeSearchRequest, res: ResourcesDep, _: Viewer) -> KnowledgeSearchResponse:
    """Hybrid (dense + BM25, RRF-fused) search. Hits below the relevance floor are dropped, so an off-topic
    question returns no hits rather than noise. Each hit carries a stable ``citation_id``."""
    hits = await _call(
        res,
        lambda: res.knowledge.search(
            body.query, k=body.k, category=body.category, collection=body.collection, filters=body.filters
        ),
    )
    return KnowledgeSearchResponse(query=body.query, hits=[KnowledgeHit.from_hit(h) for h in hits])


@router.post(
    "/ingest",
    response_model=IngestResult,
    status_code=status.HTTP_201_CREATED,
    summary="Add or replace a document (admin)",
)
async def ingest(body: KnowledgeIngestRequest, res: ResourcesDep, _: Admin) -> IngestResult:
    """Chunk, embed and store a document. Re-ingesting the same ``doc_id`` replaces it; unchanged chunks are
    kept (content-hash ids), so repeating a request changes nothing."""
    result = await _call(
        res,
        lambda: res.knowledge.ingest_document(
            body.doc_id, body.title, body.content, body.category, collection=body.collection, metadata=body.metadata
        ),
    )
    return result


@router.delete("/documents/{doc_id}", summary="Delete a document's chunks (admin)")
async def delete_document(
    doc_id: Annotated[str, Path(pattern=DOC_ID_PATTERN.pattern, description="The document id.")],
    res: ResourcesDep,
    _: Admin,
    collection: Literal["policies", "cases"] = Query("policies", description="collection holding the document"),
) -> dict[str, object]:
    """Remove every chunk of ``doc_id``; 404 when there is none."""
    removed = await _call(res, lambda: res.knowledge.delete_document(doc_id, collection))
    if removed == 0:
        raise ApiError(404, "not_found", f"no document {doc_id!r} in collection {collection!r}")
    return {"doc_id": doc_id, "collection": collection, "deleted_chunks": removed}
