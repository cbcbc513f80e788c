"""Assistants (the graphs of langgraph.json) and server info, as LangGraph Server serves them."""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from server.auth import Viewer
from server.runtime.deps import RuntimeDep
from server.runtime.registry import Assistant
from server.runtime.schemas import AssistantIdPath, Limit, Offset

router = APIRouter(tags=["assistants"])

LANGGRAPH_API_VERSION = "0.16.7"  # the langgraph-api release whose HTTP API this server follows


class AssistantSearch(BaseModel):
    """The body of ``POST /assistants/search`` and ``/assistants/count``."""

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    graph_id: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=200)
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None


def _matching(runtime: RuntimeDep, query: AssistantSearch) -> list[Assistant]:
    found = []
    for assistant in runtime.registry.values():
        info = assistant.info()
        if query.graph_id and assistant.graph_id != query.graph_id:
            continue
        if query.name and query.name.lower() not in assistant.assistant_id.lower():
            continue
        if query.metadata and any(info["metadata"].get(k) != v for k, v in query.metadata.items()):
            continue
        found.append(assistant)
    if query.sort_by:
        key = query.sort_by
        found.sort(key=lambda a: str(a.info()[key]), reverse=query.sort_order == "desc")
    return found


@router.post("/assistants/search", summary="Search assistants")
async def search_assistants(
    query: AssistantSearch, runtime: RuntimeDep, _: Viewer, response: Response
) -> list[dict[str, Any]]:
    """The assistants served (one per graph of langgraph.json), filtered and paged."""
    found = _matching(runtime, query)
    page = found[query.offset : query.offset + query.limit]
    if query.offset + query.limit < len(found):
        response.headers["X-Pagination-Next"] = str(query.offset + query.limit)
    response.headers["X-Pagination-Total"] = str(len(found))
    return [a.info() for a in page]


@router.post("/assistants/count", summary="Count assistants")
async def count_assistants(query: AssistantSearch, runtime: RuntimeDep, _: Viewer) -> int:
    return len(_matching(runtime, query))


@router.get("/assistants/{assistant_id}", summary="Get an assistant")
async def get_assistant(assistant_id: AssistantIdPath, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return runtime.manager.assistant(assistant_id).info()


@router.get("/assistants/{assistant_id}/graph", summary="The drawable graph")
async def get_assistant_graph(
    assistant_id: AssistantIdPath, runtime: RuntimeDep, _: Viewer, xray: int | bool = False
) -> dict[str, Any]:
    """Nodes and edges (``xray`` expands subgraphs to that depth)."""
    return runtime.manager.assistant(assistant_id).drawable(xray)


@router.get("/assistants/{assistant_id}/schemas", summary="Input, output, state and context schemas")
async def get_assistant_schemas(assistant_id: AssistantIdPath, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return runtime.manager.assistant(assistant_id).schemas()


@router.get("/assistants/{assistant_id}/subgraphs", summary="The schemas of the graph's subgraphs")
async def get_subgraphs(
    assistant_id: AssistantIdPath, runtime: RuntimeDep, _: Viewer, recurse: bool = False
) -> dict[str, Any]:
    """``{namespace: {input_schema, output_schema, state_schema, config_schema, context_schema}}``."""
    return await runtime.manager.assistant(assistant_id).subgraphs(recurse=recurse)


@router.get("/assistants/{assistant_id}/subgraphs/{namespace}", summary="The schemas of one subgraph")
async def get_subgraph(
    assistant_id: AssistantIdPath,
    namespace: Annotated[str, Path(max_length=500, description="The subgraph's namespace.")],
    runtime: RuntimeDep,
    _: Viewer,
    recurse: bool = False,
) -> dict[str, Any]:
    return await runtime.manager.assistant(assistant_id).subgraphs(namespace, recurse)


@router.get("/info", summary="Server information")
async def info(runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    """What this LangGraph-compatible server is and supports. ``version`` is the LangGraph Server API level it
    speaks (clients such as Studio gate features on it); ``rimas_version`` is this service's own."""
    return {
        "version": LANGGRAPH_API_VERSION,
        "rimas_version": version("rimas"),
        "langgraph_py_version": version("langgraph"),
        "assistants": len(runtime.registry),
        "flags": {"assistants": True, "crons": False, "store": False, "langsmith": False,
                  "langsmith_tracing_replicas": False},
        "host": {"kind": "self-hosted", "project_id": None, "revision_id": None, "tenant_id": None},
    }  # fmt: skip
