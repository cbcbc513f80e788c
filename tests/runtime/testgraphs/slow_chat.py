"""Two nodes over messages: ``think`` notes the question at once; ``answer`` replies, after 3 s when the
question starts with "slow" (so a second run can arrive while the first is half done)."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

SLOW_SECONDS = 3.0


def _question(state: MessagesState) -> str:
    return str(state["messages"][-1].content)


async def think(state: MessagesState) -> dict[str, Any]:
    return {"messages": [AIMessage(f"thinking about {_question(state)}")]}


async def answer(state: MessagesState) -> dict[str, Any]:
    question = str(state["messages"][-2].content)
    if question.startswith("slow"):
        await asyncio.sleep(SLOW_SECONDS)
    return {"messages": [AIMessage(f"answer to {question}")]}


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: Any = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(MessagesState)
    builder.add_node("think", think)
    builder.add_node("answer", answer)
    builder.add_edge(START, "think")
    builder.add_edge("think", "answer")
    builder.add_edge("answer", END)
    return builder.compile(checkpointer=checkpointer, store=store)


graph = build_graph()
