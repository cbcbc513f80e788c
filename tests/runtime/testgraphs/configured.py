"""A graph built per run config (a "graph factory"): its one node is named by ``configurable.node``
("default" when unset); it records the node's name, the run's context ``tone`` and ``user``, and keeps the
user's last word in the store under ``("memory", user)``."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict  # pydantic validates these on Python 3.11


class State(TypedDict, total=False):
    word: str
    nodes: Annotated[list[str], operator.add]
    tone: str | None
    remembered: str | None


class Context(TypedDict, total=False):
    tone: Literal["plain", "formal"]
    user: str


def _node(name: str) -> Any:
    async def node(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        context = runtime.context or {}
        remembered = None
        if runtime.store is not None and context.get("user"):
            namespace = ("memory", context["user"])
            item = await runtime.store.aget(namespace, "last_word")
            remembered = item.value["word"] if item is not None else None
            await runtime.store.aput(namespace, "last_word", {"word": state.get("word")})
        return {"nodes": [name], "tone": context.get("tone"), "remembered": remembered}

    return node


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: Any = None, config: RunnableConfig | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    name = ((config or {}).get("configurable") or {}).get("node") or "default"
    builder = StateGraph(State, context_schema=Context).add_node(name, _node(name))
    return builder.add_edge(START, name).add_edge(name, END).compile(checkpointer=checkpointer, store=store)


graph = build_graph()
