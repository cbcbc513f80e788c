"""Knowledge base: hybrid search over policies and past cases with citations, the documents stored by category;
admin ingestion and deletion."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, Field

from rag.categories import document_categories
from rag.documents import DOC_ID_PATTERN
from rag.schemas import (
    Category,
    KnowledgeHit,
    KnowledgeIngestRequest,
    KnowledgeSearchRequest,
    KnowledgeSearchResponse,
)
from rag.service import DocumentInfo, IngestResult, KnowledgeBaseError, PackagedDocumentError
from server.auth import Admin, Viewer
from server.deps import ResourcesDep
from server.errors import ApiError
from server.openapi import errors
from server.resources import Resources

router = APIRouter(prefix="/knowledge", tags=["knowledge"])
Collection = Literal["policies", "cases"]

T = TypeVar("T")


async def _call(res: Resources, fn: Callable[[], T]) -> T:
    """Run a knowledge-base call in a thread, one at a time; its input errors become 422, a change to a packaged
    policy document 409 (the request is well formed: the document is the policy file's)."""
    async with res.knowledge_lock:
        try:
            return await asyncio.to_thread(fn)
        except PackagedDocumentError as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
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
    responses=errors(409),
)
async def ingest(body: KnowledgeIngestRequest, res: ResourcesDep, _: Admin) -> IngestResult:
    """Chunk, embed and store a document. Re-ingesting the same ``doc_id`` replaces it; unchanged chunks are
    kept (content-hash ids), so repeating a request changes nothing. 409 for a packaged policy document's id."""
    result = await _call(
        res,
        lambda: res.knowledge.ingest_document(
            body.doc_id, body.title, body.content, body.category, collection=body.collection, metadata=body.metadata
        ),
    )
    return result


@router.delete("/documents/{doc_id}", summary="Delete a document's chunks (admin)", responses=errors(409))
async def delete_document(
    doc_id: Annotated[str, Path(pattern=DOC_ID_PATTERN.pattern, description="The document id.")],
    res: ResourcesDep,
    _: Admin,
    collection: Literal["policies", "cases"] = Query("policies", description="collection holding the document"),
) -> dict[str, object]:
    """Remove every chunk of ``doc_id``; 404 when there is none, 409 for a packaged policy document (it is
    rendered from the policy file at every start)."""
    removed = await _call(res, lambda: res.knowledge.delete_document(doc_id, collection))
    if removed == 0:
        raise ApiError(404, "not_found", f"no document {doc_id!r} in collection {collection!r}")
    return {"doc_id": doc_id, "collection": collection, "deleted_chunks": removed}


class KnowledgeDocument(BaseModel):
    """One stored document."""

    doc_id: str
    title: str
    category: str
    source: str = Field(description="packaged (rendered from the policy file), admin (ingested) or case")
    collection: Collection
    sections: int = Field(description="sections (citable units) stored")
    chunks: int = Field(description="chunks (search points) stored; a long section has several")

    @classmethod
    def from_info(cls, info: DocumentInfo) -> KnowledgeDocument:
        return cls(**info.to_dict())


class CategoryCount(BaseModel):
    """A category and what the collection holds of it."""

    category: str
    documents: int
    chunks: int


class KnowledgeDocumentsResponse(BaseModel):
    collection: Collection
    categories: list[CategoryCount] = Field(
        description="every allowed category, in order, with its document and chunk counts (0 when it has none)"
    )
    documents: list[KnowledgeDocument] = Field(description="ordered by category, then title")


@router.get("/documents", response_model=KnowledgeDocumentsResponse, summary="List the documents by category")
async def list_documents(
    res: ResourcesDep,
    _: Viewer,
    collection: Annotated[Collection, Query(description="the collection to list")] = "policies",
    category: Annotated[Category | None, Query(description="only documents of this category")] = None,
) -> KnowledgeDocumentsResponse:
    """The documents a collection holds (packaged policies, admin documents or cases), each with its category,
    source and section and chunk counts, and every allowed category with its counts."""
    infos = await _call(res, lambda: res.knowledge.documents(collection, category))
    documents = [KnowledgeDocument.from_info(info) for info in infos]
    counts = [
        CategoryCount(category=name, documents=sum(1 for d in documents if d.category == name),
                      chunks=sum(d.chunks for d in documents if d.category == name))
        for name in document_categories()
        if category is None or name == category
    ]  # fmt: skip
    return KnowledgeDocumentsResponse(collection=collection, categories=counts, documents=documents)
