"""A side effect between two checkpoints: ``charge`` writes a ledger row keyed on thread + action id (as the
design asks of every tool), then waits ``delay`` seconds before its checkpoint; ``confirm`` follows. Killing the
server during the wait and re-executing the run must leave one ledger row."""

from __future__ import annotations

import asyncio
import os
from typing import Any, TypedDict

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph


class State(TypedDict, total=False):
    action_id: str
    amount: float
    delay: float
    charged: bool
    confirmed: bool


def _write_ledger(thread_id: str, action_id: str, amount: float) -> None:
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS test_ledger (thread_id text, action_id text, amount numeric, "
                     "written_at timestamptz DEFAULT now(), PRIMARY KEY (thread_id, action_id))")  # fmt: skip
        conn.execute("INSERT INTO test_ledger (thread_id, action_id, amount) VALUES (%s, %s, %s) "
                     "ON CONFLICT DO NOTHING", (thread_id, action_id, amount))  # fmt: skip


async def charge(state: State) -> dict[str, Any]:
    thread_id = get_config()["configurable"]["thread_id"]
    await asyncio.to_thread(_write_ledger, thread_id, state["action_id"], state.get("amount", 1.0))
    await asyncio.sleep(state.get("delay", 0.0))
    return {"charged": True}


async def confirm(state: State) -> dict[str, Any]:
    return {"confirmed": True}


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: Any = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    builder.add_node("charge", charge)
    builder.add_node("confirm", confirm)
    builder.add_edge(START, "charge")
    builder.add_edge("charge", "confirm")
    builder.add_edge("confirm", END)
    return builder.compile(checkpointer=checkpointer, store=store)


graph = build_graph()
