"""Request and response models for the knowledge endpoints (``POST /knowledge/search|ingest``).

The server wires the routes; these models give it the validation (422 naming the field) and the
response shape, and convert to the :class:`rag.service.KnowledgeBase` calls.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, WithJsonSchema
from pydantic_core import PydanticCustomError

from rag.categories import document_categories
from rag.chunks import FILTER_KEYS
from rag.documents import DOC_ID_PATTERN
from rag.service import FILTER_ALIASES, MAX_K, MAX_QUERY_CHARS, Hit


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


#: Request-model scalars exactly as JSON Schema reads them: an integer is a JSON number with no fraction
#: (``5`` or ``5.0``, never ``true`` or ``"5"``); a boolean is ``true`` or ``false`` only. Put
#: ``JSON_INTEGER`` after any bounds (``Annotated[int, Field(ge=1), JSON_INTEGER]``) so they stay in the schema.
JSON_INTEGER = BeforeValidator(_json_integer)
JsonBool = Annotated[bool, Strict()]

#: Text with something in it besides white space (and, as all text, no NUL character).
NON_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
NonBlankText = Annotated[str, Field(pattern=NON_BLANK)]


def _known_category(value: str) -> str:
    allowed = document_categories()
    if value not in allowed:
        raise PydanticCustomError(
            "unknown_category", "{value} is not allowed; allowed: {allowed}",
            {"value": repr(value), "allowed": ", ".join(allowed)},
        )  # fmt: skip
    return value


#: A document category: one of the packaged policy documents' categories, or ``case``.
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


def _not_all_blank(value: list[str]) -> list[str]:
    if not any(v.strip() for v in value):
        raise PydanticCustomError("filter_value", "needs at least one non-blank value")
    return value


_FILTER_VALUE_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": NON_BLANK},
        {"type": "array", "items": {"type": "string"}, "contains": {"type": "string", "pattern": NON_BLANK},
         "maxItems": 50},
    ]
}  # fmt: skip

#: A filter value: one non-blank string or a list of strings, at least one of them non-blank (any matches).
FilterValue = Annotated[
    list[str], BeforeValidator(_as_list), AfterValidator(_not_all_blank), WithJsonSchema(_FILTER_VALUE_SCHEMA)
]


def _filters_schema() -> dict[str, Any]:
    value = _FILTER_VALUE_SCHEMA
    categories = {"enum": list(document_categories())}
    category = {"anyOf": [categories, {"type": "array", "items": categories, "minItems": 1, "maxItems": 50}]}
    keys = sorted({*FILTER_KEYS, *FILTER_ALIASES})
    return {
        "anyOf": [
            {"type": "object", "properties": {k: category if k == "category" else value for k in keys},
             "additionalProperties": False},
            {"type": "null"},
        ],
    }  # fmt: skip


class KnowledgeSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NON_BLANK)
    k: Annotated[int, Field(ge=1, le=MAX_K), JSON_INTEGER] = 5
    category: Category | None = Field(default=None, description="only passages of documents in this category")
    collection: Literal["policies", "cases"] = "policies"
    filters: Annotated[dict[str, FilterValue] | None, WithJsonSchema(_filters_schema())] = Field(
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

    content: str = Field(min_length=1, max_length=200_000, pattern=NON_BLANK)
    category: Category = Field(description="the document's category")
    title: str = Field(min_length=1, max_length=200, pattern=NON_BLANK)
    doc_id: str | None = Field(default=None, max_length=80, pattern=DOC_ID_PATTERN.pattern)
    collection: Literal["policies", "cases"] = "policies"
    metadata: dict[str, Any] | None = None
