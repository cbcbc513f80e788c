"""Five nodes in a line; each counts, reports progress, and may wait (``delay``) or fail (``fail_at``)."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

NODES = ("n1", "n2", "n3", "n4", "n5")


class State(TypedDict, total=False):
    count: int
    steps: Annotated[list[str], operator.add]
    delay: float
    fail_at: str


def _node(name: str) -> Any:
    async def node(state: State) -> dict[str, Any]:
        get_stream_writer()({"node": name, "progress": (NODES.index(name) + 1) / len(NODES)})
        if name == "n1" and state.get("delay"):
            await asyncio.sleep(state["delay"])
        if state.get("fail_at") == name:
            raise ValueError(f"{name} was told to fail")
        return {"count": state.get("count", 0) + 1, "steps": [name]}

    return node


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: Any = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    previous = START
    for name in NODES:
        builder.add_node(name, _node(name))
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder.compile(checkpointer=checkpointer, store=store)


graph = build_graph()
