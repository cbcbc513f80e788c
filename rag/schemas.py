"""Request and response models for the knowledge endpoints (``POST /knowledge/search|ingest``).

The server wires the routes; these models give it the validation (422 naming the field) and the
response shape, and convert to the :class:`rag.service.KnowledgeBase` calls.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.service import MAX_K, MAX_QUERY_CHARS, Hit


class KnowledgeSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(default=5, ge=1, le=MAX_K)
    category: str | None = None
    collection: Literal["policies", "cases"] = "policies"
    filters: dict[str, str | list[str]] | None = None


class KnowledgeHit(BaseModel):
    text: str
    score: float = Field(description="cosine similarity of question and passage (the relevance gate uses it)")
    title: str
    section: str
    doc_id: str
    citation_id: str
    collection: str
    fusion_score: float = Field(description="the score hits are ordered by (RRF for hybrid search)")
    metadata: dict[str, Any]

    @classmethod
    def from_hit(cls, hit: Hit) -> KnowledgeHit:
        return cls(**hit.to_dict())


class KnowledgeSearchResponse(BaseModel):
    query: str
    hits: list[KnowledgeHit]


class KnowledgeIngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=200_000)
    category: str = Field(min_length=1, max_length=40)
    title: str = Field(min_length=1, max_length=200)
    doc_id: str | None = Field(default=None, max_length=80)
    collection: Literal["policies", "cases"] = "policies"
    metadata: dict[str, Any] | None = None
