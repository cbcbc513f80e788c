"""A parent graph whose subgraph ``inner`` stops before its node ``act`` (a static interrupt compiled in):
``prepare`` sets ``city``, ``act`` answers with it."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph


class State(TypedDict, total=False):
    city: str
    answer: str


def prepare(state: State) -> dict[str, Any]:
    return {"city": state.get("city") or "Lyon"}


def act(state: State) -> dict[str, Any]:
    return {"answer": f"sunny in {state['city']}"}


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: Any = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    inner = (
        StateGraph(State).add_node("prepare", prepare).add_node("act", act)
        .add_edge(START, "prepare").add_edge("prepare", "act").add_edge("act", END)
        .compile(interrupt_before=["act"])
    )  # fmt: skip
    builder = StateGraph(State).add_node("inner", inner).add_edge(START, "inner").add_edge("inner", END)
    return builder.compile(checkpointer=checkpointer, store=store)


graph = build_graph()
