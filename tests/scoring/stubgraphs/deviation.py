"""A stand-in ``deviation`` graph for the scoring tests: one node that answers with a fixed resolution, so the
tests see threads start (auto-start, ``POST /trigger-agent``) without the real workflow's specialists."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph


class State(TypedDict, total=False):
    deviation_id: str
    order_id: str
    resolution: dict[str, Any]


async def record(state: State) -> dict[str, Any]:
    return {
        "resolution": {
            "summary": f"stub resolution of {state.get('deviation_id')}",
            "status": "resolved",
            "actions": [],
        }
    }


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: Any = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    builder.add_node("record", record)
    builder.add_edge(START, "record")
    builder.add_edge("record", END)
    return builder.compile(checkpointer=checkpointer, store=store)


graph = build_graph()
