"""Assistants (the graphs of langgraph.json, and those created from them with their own config) and server
info, as LangGraph Server serves them. Reading needs viewer; creating, changing and deleting needs admin."""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from rag.schemas import JSON_INTEGER
from server.auth import Admin, Viewer
from server.openapi import errors
from server.runtime.deps import RuntimeDep
from server.runtime.schemas import UUID_PATTERN, AssistantIdPath, Limit, Offset, RunConfig

router = APIRouter(tags=["assistants"])

LANGGRAPH_API_VERSION = "0.16.7"  # the langgraph-api release whose HTTP API this server follows


class AssistantSearch(BaseModel):
    """The body of ``POST /assistants/search`` and ``/assistants/count``."""

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    graph_id: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=200, description="Part of the name (any case).")
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None


class AssistantFields(BaseModel):
    """What an assistant sets over its graph."""

    model_config = ConfigDict(extra="ignore")

    config: RunConfig | None = Field(None, description="Config merged under each run's (configurable key by key).")
    context: dict[str, Any] | None = Field(None, description="Context merged under each run's.")
    metadata: dict[str, Any] | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)


class AssistantCreate(AssistantFields):
    """The body of ``POST /assistants``."""

    graph_id: str = Field(max_length=200, description="A graph of langgraph.json.")
    assistant_id: Annotated[str, Field(pattern=UUID_PATTERN)] | None = Field(
        None, description="A UUID (default: a new one)."
    )
    if_exists: Literal["raise", "do_nothing"] = "raise"


class AssistantPatch(AssistantFields):
    """The body of ``PATCH /assistants/{id}``: the fields given replace the current ones (metadata is merged)."""

    graph_id: str | None = Field(None, max_length=200)


class VersionSearch(BaseModel):
    """The body of ``POST /assistants/{id}/versions``."""

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    limit: Limit = 10
    offset: Offset = 0


class LatestVersion(BaseModel):
    """The body of ``POST /assistants/{id}/latest``."""

    version: Annotated[int, Field(ge=1, le=1_000_000), JSON_INTEGER]


def _fields(body: AssistantFields) -> dict[str, Any]:
    return {"config": body.config, "context": body.context, "metadata": body.metadata, "name": body.name,
            "description": body.description}  # fmt: skip


@router.post("/assistants", summary="Create an assistant (admin)", responses=errors(409))
async def create_assistant(body: AssistantCreate, runtime: RuntimeDep, principal: Admin) -> dict[str, Any]:
    """An assistant of a graph with its own config, context, metadata and name (version 1). An existing
    ``assistant_id`` is a 409 unless ``if_exists='do_nothing'`` (then it is returned unchanged)."""
    return await runtime.assistants.create(
        graph_id=body.graph_id, actor=principal.id, assistant_id=body.assistant_id, if_exists=body.if_exists,
        **_fields(body),
    )  # fmt: skip


@router.post("/assistants/search", summary="Search assistants")
async def search_assistants(
    query: AssistantSearch, runtime: RuntimeDep, _: Viewer, response: Response
) -> list[dict[str, Any]]:
    """The system assistants (one per graph of langgraph.json, ``metadata.created_by = "system"``) and those
    created through the API, filtered (graph, part of the name, metadata containing the given keys), sorted
    (default: newest first) and paged (``X-Pagination-Total``, ``X-Pagination-Next``)."""
    page, total = await runtime.assistants.search(
        graph_id=query.graph_id, name=query.name, metadata=query.metadata, limit=query.limit, offset=query.offset,
        sort_by=query.sort_by, sort_order=query.sort_order,
    )  # fmt: skip
    if query.offset + query.limit < total:
        response.headers["X-Pagination-Next"] = str(query.offset + query.limit)
    response.headers["X-Pagination-Total"] = str(total)
    return page


@router.post("/assistants/count", summary="Count assistants")
async def count_assistants(query: AssistantSearch, runtime: RuntimeDep, _: Viewer) -> int:
    found = await runtime.assistants.search(graph_id=query.graph_id, name=query.name, metadata=query.metadata,
                                            limit=1)  # fmt: skip
    return found[1]


@router.get("/assistants/{assistant_id}", summary="Get an assistant")
async def get_assistant(assistant_id: AssistantIdPath, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return await runtime.assistants.get(assistant_id)


@router.patch("/assistants/{assistant_id}", summary="Change an assistant (admin)", responses=errors(409))
async def patch_assistant(
    assistant_id: AssistantIdPath, body: AssistantPatch, runtime: RuntimeDep, principal: Admin
) -> dict[str, Any]:
    """A new version with the fields given (the others kept; ``metadata`` merged in). A system assistant is
    a 409: langgraph.json defines it."""
    return await runtime.assistants.update(assistant_id, actor=principal.id, graph_id=body.graph_id, **_fields(body))


@router.delete(
    "/assistants/{assistant_id}", status_code=204, summary="Delete an assistant (admin)", responses=errors(409)
)
async def delete_assistant(
    assistant_id: AssistantIdPath,
    runtime: RuntimeDep,
    principal: Admin,
    delete_threads: Annotated[bool, Query(description="Also delete the threads it started (idle ones).")] = False,
) -> Response:
    """Deletes the assistant and its versions (a system assistant is a 409). Runs already queued keep the
    config they were given."""
    threads = await runtime.assistants.delete(assistant_id, principal.id)
    if delete_threads:
        for thread_id in threads:
            await runtime.delete_thread(thread_id)
    return Response(status_code=204)


@router.post("/assistants/{assistant_id}/versions", summary="List an assistant's versions")
async def list_versions(
    assistant_id: AssistantIdPath, body: VersionSearch, runtime: RuntimeDep, _: Viewer
) -> list[dict[str, Any]]:
    """Newest first; ``metadata`` keeps the versions whose metadata contains it."""
    return await runtime.assistants.versions(assistant_id, metadata=body.metadata, limit=body.limit,
                                             offset=body.offset)  # fmt: skip


@router.post("/assistants/{assistant_id}/latest", summary="Put a version in force (admin)")
async def set_latest_version(
    assistant_id: AssistantIdPath, body: LatestVersion, runtime: RuntimeDep, principal: Admin
) -> dict[str, Any]:
    """Runs started from now on use that version; a later change still gets the next new number."""
    return await runtime.assistants.set_latest(assistant_id, body.version, principal.id)


@router.get("/assistants/{assistant_id}/graph", summary="The drawable graph")
async def get_assistant_graph(
    assistant_id: AssistantIdPath, runtime: RuntimeDep, _: Viewer, xray: int | bool = False
) -> dict[str, Any]:
    """Nodes and edges (``xray`` expands subgraphs to that depth)."""
    return (await runtime.assistants.graph_of(assistant_id)).drawable(xray)


@router.get("/assistants/{assistant_id}/schemas", summary="Input, output, state and context schemas")
async def get_assistant_schemas(assistant_id: AssistantIdPath, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return (await runtime.assistants.graph_of(assistant_id)).schemas()


@router.get("/assistants/{assistant_id}/subgraphs", summary="The schemas of the graph's subgraphs")
async def get_subgraphs(
    assistant_id: AssistantIdPath, runtime: RuntimeDep, _: Viewer, recurse: bool = False
) -> dict[str, Any]:
    """``{namespace: {input_schema, output_schema, state_schema, config_schema, context_schema}}``."""
    return await (await runtime.assistants.graph_of(assistant_id)).subgraphs(recurse=recurse)


@router.get("/assistants/{assistant_id}/subgraphs/{namespace}", summary="The schemas of one subgraph")
async def get_subgraph(
    assistant_id: AssistantIdPath,
    namespace: Annotated[str, Path(max_length=500, description="The subgraph's namespace.")],
    runtime: RuntimeDep,
    _: Viewer,
    recurse: bool = False,
) -> dict[str, Any]:
    return await (await runtime.assistants.graph_of(assistant_id)).subgraphs(namespace, recurse)


@router.get("/info", summary="Server information")
async def info(runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    """What this LangGraph-compatible server is and supports. ``version`` is the LangGraph Server API level it
    speaks (clients such as Studio gate features on it); ``rimas_version`` is this service's own."""
    return {
        "version": LANGGRAPH_API_VERSION,
        "rimas_version": version("rimas"),
        "langgraph_py_version": version("langgraph"),
        "assistants": len(runtime.registry),
        "flags": {"assistants": True, "crons": True, "store": True, "langsmith": False,
                  "langsmith_tracing_replicas": False},
        "host": {"kind": "self-hosted", "project_id": None, "revision_id": None, "tenant_id": None},
    }  # fmt: skip
