"""The LangGraph Store API: items that graphs and clients share across threads (long-term memory).

The endpoints and payloads are LangGraph Server's, as ``langgraph-sdk``'s ``client.store`` and
``@langchain/langgraph-sdk``'s ``StoreClient`` call them:

- ``PUT /store/items`` ``{namespace, key, value, index?, ttl?}`` -> 204 (insert or replace);
- ``GET /store/items?namespace=a.b&key=k`` (the namespace as one dotted string) -> the item, or ``null`` when
  there is none (200, as LangGraph Server answers: the JS SDK's ``getItem`` then returns ``null``; a 404 would
  make it throw);
- ``DELETE /store/items`` ``{namespace, key}`` -> 204 (deleting a missing item is not an error);
- ``POST /store/items/search`` ``{namespace_prefix, filter?, limit?, offset?, query?, refresh_ttl?}`` ->
  ``{"items": [...]}``, most recently updated first, or by relevance (``score``) when ``query`` is given;
- ``POST /store/namespaces`` ``{prefix?, suffix?, max_depth?, limit?, offset?}`` -> ``{"namespaces": [...]}``.

A namespace is a list of labels: each 1-128 characters without ``.`` (LangGraph joins them with dots), at
most 10. Reads need the viewer role, writes the operator role. The store is :mod:`server.runtime.item_store`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Query, Response, status
from langgraph.store.base import Item, SearchItem
from langgraph.store.postgres.aio import AsyncPostgresStore
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, Strict, WithJsonSchema
from pydantic_core import PydanticCustomError

from rag.embeddings import EmbeddingError
from rag.schemas import JSON_INTEGER, JsonBool
from server.auth import Operator, Viewer
from server.errors import ApiError
from server.runtime.admission import check_size
from server.runtime.deps import RuntimeDep
from server.runtime.schemas import Limit, Offset

log = logging.getLogger(__name__)
router = APIRouter(tags=["store"])

MAX_LABEL = 128
MAX_LABELS = 10
MAX_KEY = 512  # with the longest namespace, well inside PostgreSQL's limit for the (prefix, key) index
MAX_QUERY = 2000
MAX_FILTER_KEYS = 64
MAX_INDEX_PATHS = 20
MAX_INDEX_PATH = 200
INDEX_RULE = f"false, null or a list of at most {MAX_INDEX_PATHS} field paths of up to {MAX_INDEX_PATH} characters"
MAX_TTL_MINUTES = 52_560_000  # 100 years
FILTER_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
RESERVED_ROOT = "langgraph"
LABEL_RULE = f"1-{MAX_LABEL} characters without '.'"
LABEL_PATTERN = "^[^.\\u0000]+$"
DOTTED_PATTERN = f"^[^.\\u0000]{{1,{MAX_LABEL}}}(\\.[^.\\u0000]{{1,{MAX_LABEL}}}){{0,{MAX_LABELS - 1}}}$"


def label_problem(label: str) -> str | None:
    """What is wrong with a namespace label, or None."""
    if not label or len(label) > MAX_LABEL or "." in label:
        return f"a namespace label is {LABEL_RULE}; got {label!r}"
    return None


def _label(value: str) -> str:
    if problem := label_problem(value):
        raise PydanticCustomError("namespace_label", problem)
    return value


def _not_reserved(namespace: list[str]) -> list[str]:
    if namespace and namespace[0] == RESERVED_ROOT:
        raise PydanticCustomError("namespace_reserved", f"the root label {RESERVED_ROOT!r} is reserved by LangGraph")
    return namespace


def _index(value: Any) -> Any:
    """``false``, ``null`` or a list of field paths (each once: a path twice would write its vector twice)."""
    if value is None or value is False:
        return value
    if (isinstance(value, list) and len(value) <= MAX_INDEX_PATHS
            and all(isinstance(p, str) and len(p) <= MAX_INDEX_PATH for p in value)):  # fmt: skip
        return list(dict.fromkeys(value))
    raise PydanticCustomError("index", INDEX_RULE)


def _condition(value: Any) -> Any:
    """A filter value: an object is a map of operators, anything else is compared for equality."""
    if isinstance(value, dict) and (unknown := sorted(set(value) - set(FILTER_OPERATORS))):
        raise PydanticCustomError("filter_operator", "an object here is a map of operators ({allowed}); got {unknown}",
                                  {"allowed": ", ".join(FILTER_OPERATORS), "unknown": ", ".join(unknown)})  # fmt: skip
    return value


Label = Annotated[
    str,
    AfterValidator(_label),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_LABEL, "pattern": LABEL_PATTERN,
                    "description": f"A namespace label: {LABEL_RULE}."}),
]  # fmt: skip
Namespace = Annotated[
    list[Label], Field(min_length=1, max_length=MAX_LABELS, description=f"The item's namespace: 1-{MAX_LABELS} labels.")
]
NamespacePart = Annotated[list[Label], Field(max_length=MAX_LABELS)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY, description="The item's key within its namespace.")]
FILTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_FILTER_KEYS,
    "additionalProperties": {
        "anyOf": [
            {"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"},
            {"type": "array", "items": {}},
            {"type": "object", "properties": {op: {} for op in FILTER_OPERATORS}, "additionalProperties": False},
        ]
    },
    "description": "Conditions on the value's top-level fields, all of which must hold: a plain value is equality, "
    "an object compares with operators ($eq, $ne, $gt, $gte, $lt, $lte; the ordering ones compare as text).",
}  # fmt: skip
Index = Annotated[
    Literal[False] | list[str] | None,
    BeforeValidator(_index),
    WithJsonSchema({"anyOf": [{"const": False}, {"type": "array", "maxItems": MAX_INDEX_PATHS,
                              "items": {"type": "string", "maxLength": MAX_INDEX_PATH}}, {"type": "null"}]}),
]  # fmt: skip
Condition = Annotated[Any, AfterValidator(_condition)]
Filter = Annotated[dict[str, Condition], Field(max_length=MAX_FILTER_KEYS), WithJsonSchema(FILTER_SCHEMA)]


class StorePutRequest(BaseModel):
    """``PUT /store/items``."""

    namespace: Annotated[Namespace, AfterValidator(_not_reserved)]
    key: Key
    value: dict[str, Any] = Field(description="The item's value (a JSON object).")
    index: Index = Field(
        None, description="Semantic search: null indexes the whole value, false nothing, a list these field paths "
        "('title', 'sections[*].text', 'author.{name,bio}').",
    )  # fmt: skip
    ttl: Annotated[float, Strict(), Field(ge=0.01, le=MAX_TTL_MINUTES, allow_inf_nan=False)] | None = Field(
        None, description="Minutes until the item expires (each read renews them); null: never."
    )


class StoreDeleteRequest(BaseModel):
    """``DELETE /store/items``."""

    namespace: Namespace
    key: Key


class StoreSearchRequest(BaseModel):
    """``POST /store/items/search``."""

    namespace_prefix: NamespacePart = Field(
        default_factory=list, description="Items whose namespace starts with these labels ([]: every item)."
    )
    filter: Filter | None = None
    limit: Limit = 10
    offset: Offset = 0
    query: str | None = Field(
        None, max_length=MAX_QUERY, description="Natural-language query: rank by semantic similarity (score)."
    )
    refresh_ttl: JsonBool | None = Field(None, description="Renew the TTL of the items returned (default: yes).")


class StoreNamespacesRequest(BaseModel):
    """``POST /store/namespaces``."""

    prefix: NamespacePart | None = Field(None, description="Namespaces starting with these labels ('*' matches any).")
    suffix: NamespacePart | None = Field(None, description="Namespaces ending with these labels ('*' matches any).")
    max_depth: Annotated[int, Field(ge=1, le=100), JSON_INTEGER] | None = Field(
        None, description="Truncate namespaces to this many labels (the distinct results are listed)."
    )
    limit: Limit = 100
    offset: Offset = 0


class StoreItem(BaseModel):
    """An item of the store."""

    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class StoreSearchItem(StoreItem):
    score: float | None = Field(None, description="Relevance to the query (higher is closer); null without one.")


class StoreSearchResponse(BaseModel):
    items: list[StoreSearchItem]


class StoreNamespacesResponse(BaseModel):
    namespaces: list[list[str]]


def _store(runtime: Any) -> AsyncPostgresStore:
    store = getattr(runtime, "item_store", None)
    if not isinstance(store, AsyncPostgresStore):
        raise ApiError(503, "unavailable", "the item store is not open")
    return store


@contextlib.contextmanager
def _embedding() -> Iterator[None]:
    """An embedder that fails (OpenAI down, say) is a 503: the request was fine."""
    try:
        yield
    except EmbeddingError as exc:
        raise ApiError(503, "unavailable", f"the embedding model failed: {exc}") from exc


@contextlib.contextmanager
def _too_long_for_postgres() -> Iterator[None]:
    """What the schema cannot say: PostgreSQL indexes at most ~2.7 KB per row (bytes, not characters), and two
    index paths may name the same field of a value."""
    try:
        yield
    except psycopg.errors.ProgramLimitExceeded as exc:
        raise ApiError(
            422,
            "validation_error",
            "namespace and key: too long together for the database index once "
            "encoded as UTF-8 (about 2,700 bytes); use shorter labels or key",
        ) from exc
    except psycopg.errors.CardinalityViolation as exc:
        raise ApiError(
            422, "validation_error", "index: two paths select the same text of the value; list each field once"
        ) from exc


def _fields(item: Item) -> dict[str, Any]:
    return {"namespace": list(item.namespace), "key": item.key, "value": item.value, "created_at": item.created_at,
            "updated_at": item.updated_at}  # fmt: skip


def _search_item(item: SearchItem) -> StoreSearchItem:
    score = item.score if item.score is not None and math.isfinite(item.score) else None  # NaN: a blank query vector
    return StoreSearchItem(**_fields(item), score=score)


def _namespace_query(dotted: str) -> tuple[str, ...]:
    labels = dotted.split(".")
    problem = "" if len(labels) <= MAX_LABELS else f"at most {MAX_LABELS} labels joined with '.'; got {len(labels)}"
    problem = problem or next(filter(None, map(label_problem, labels)), "")
    if problem:
        raise ApiError(422, "validation_error", f"namespace: {problem}",
                       [{"field": "namespace", "message": problem, "type": "namespace_label"}])  # fmt: skip
    return tuple(labels)


@router.put("/store/items", summary="Store or replace an item", status_code=status.HTTP_204_NO_CONTENT,
            response_class=Response)  # fmt: skip
async def put_item(body: StorePutRequest, runtime: RuntimeDep, principal: Operator) -> Response:
    """Insert the item, or replace the value of the item with this namespace and key (``created_at`` is kept).
    It is indexed for semantic search as ``index`` says, and expires ``ttl`` minutes after its last read or
    write when given."""
    store = _store(runtime)
    check_size("value", body.value, runtime.settings.max_input_bytes, "RIMAS_MAX_INPUT_BYTES")
    with _embedding(), _too_long_for_postgres():
        await store.aput(tuple(body.namespace), body.key, body.value, index=body.index, ttl=body.ttl)
    log.info("store item written", extra={"namespace": body.namespace, "key": body.key, "by": principal.id})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/store/items", summary="Get an item", response_model=StoreItem | None)
async def get_item(
    runtime: RuntimeDep,
    _: Viewer,
    namespace: Annotated[str, Query(
        description=f"The namespace's labels joined with '.' (at most {MAX_LABELS}, each {LABEL_RULE}).",
        json_schema_extra={"pattern": DOTTED_PATTERN, "maxLength": MAX_LABELS * (MAX_LABEL + 1) - 1},
    )],
    key: Annotated[str, Query(min_length=1, max_length=MAX_KEY, description="The item's key.")],
    refresh_ttl: Annotated[bool | None, Query(description="Renew the item's TTL (default: yes).")] = None,
) -> StoreItem | None:  # fmt: skip
    """The item, or ``null`` (200) when there is none: LangGraph Server's answer, which the SDKs read as "no
    item" (a 404 would make the JS SDK's ``getItem`` throw)."""
    item = await _store(runtime).aget(_namespace_query(namespace), key, refresh_ttl=refresh_ttl)
    return None if item is None else StoreItem(**_fields(item))


@router.delete("/store/items", summary="Delete an item", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response)  # fmt: skip
async def delete_item(body: StoreDeleteRequest, runtime: RuntimeDep, principal: Operator) -> Response:
    """Delete the item (and its vectors); an item that does not exist is already deleted, so also 204."""
    await _store(runtime).adelete(tuple(body.namespace), body.key)
    log.info("store item deleted", extra={"namespace": body.namespace, "key": body.key, "by": principal.id})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/store/items/search", summary="Search items", response_model=StoreSearchResponse)
async def search_items(body: StoreSearchRequest, runtime: RuntimeDep, _: Viewer) -> StoreSearchResponse:
    """Items under ``namespace_prefix`` whose values match ``filter``, paged; most recently updated first, or,
    with ``query``, most relevant first with their ``score`` (semantic search on the server's embedder)."""
    store = _store(runtime)
    if body.query and store.index_config is None:
        raise ApiError(503, "unavailable", "semantic search is off on this server (the start-up log says why); "
                       "search without query")  # fmt: skip
    # plain values as $eq: the same condition, serialised by json rather than orjson (which refuses big integers)
    conditions = {k: v if isinstance(v, dict) else {"$eq": v} for k, v in (body.filter or {}).items()}
    with _embedding():
        items = await store.asearch(
            tuple(body.namespace_prefix), query=body.query or None, filter=conditions or None, limit=body.limit,
            offset=body.offset, refresh_ttl=body.refresh_ttl,
        )  # fmt: skip
    return StoreSearchResponse(items=[_search_item(item) for item in items])


@router.post("/store/namespaces", summary="List namespaces", response_model=StoreNamespacesResponse)
async def list_namespaces(body: StoreNamespacesRequest, runtime: RuntimeDep, _: Viewer) -> StoreNamespacesResponse:
    """The distinct namespaces holding items, in order, filtered by ``prefix`` and ``suffix``, truncated to
    ``max_depth`` labels, paged."""
    namespaces = await _store(runtime).alist_namespaces(
        prefix=tuple(body.prefix) if body.prefix else None, suffix=tuple(body.suffix) if body.suffix else None,
        max_depth=body.max_depth, limit=body.limit, offset=body.offset,
    )  # fmt: skip
    return StoreNamespacesResponse(namespaces=[list(ns) for ns in namespaces])
