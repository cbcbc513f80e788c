"""Request and response models for the knowledge endpoints (``POST /knowledge/search|ingest``).

The server wires the routes; these models give it the validation (422 naming the field) and the
response shape, and convert to the :class:`rag.service.KnowledgeBase` calls.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from rag.categories import document_categories
from rag.service import MAX_K, MAX_QUERY_CHARS, Hit


def _known_category(value: str) -> str:
    canonical = value.strip().lower()
    allowed = document_categories()
    if canonical not in allowed:
        raise PydanticCustomError(
            "unknown_category", "{value} is not allowed; allowed: {allowed}",
            {"value": repr(value), "allowed": ", ".join(allowed)},
        )  # fmt: skip
    return canonical


#: A document category: one of the packaged policy documents' categories, or ``case`` (case-insensitive).
Category = Annotated[
    str,
    AfterValidator(_known_category),
    WithJsonSchema({"type": "string", "enum": list(document_categories())}),
]


def _as_list(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise PydanticCustomError("filter_value", "must be a string or a list of strings")
    return value


#: A filter value: one string or a list of strings (any of them matches).
FilterValue = Annotated[
    list[str],
    BeforeValidator(_as_list),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


class KnowledgeSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(default=5, ge=1, le=MAX_K)
    category: Category | None = Field(default=None, description="only passages of documents in this category")
    collection: Literal["policies", "cases"] = "policies"
    filters: dict[str, FilterValue] | None = Field(
        default=None,
        description="payload filters, e.g. {\"mode\": \"Road\", \"agents\": [\"shipment\"]}: "
        "category, agents, mode, warehouse, severity, doc_id, source",
    )


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
    category: Category = Field(description="the document's category")
    title: str = Field(min_length=1, max_length=200)
    doc_id: str | None = Field(default=None, max_length=80)
    collection: Literal["policies", "cases"] = "policies"
    metadata: dict[str, Any] | None = None
