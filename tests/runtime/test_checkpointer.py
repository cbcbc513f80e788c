"""The service's checkpointer writes what LangGraph's stock ``AsyncPostgresSaver`` writes: the same graph run on
both (messages in blobs, inline counters, an interrupt and its resume, a fan-out of parallel tasks) leaves the
same history, the same rows per table, and reads back the same through either saver."""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Send, interrupt
from psycopg_pool import AsyncConnectionPool
from typing_extensions import TypedDict

from server.checkpointer import PooledPostgresSaver
from server.db import CONNECTION_KWARGS


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    count: int
    parts: Annotated[list[str], operator.add]
    approved: bool


def greet(state: State) -> State:
    return {"messages": [AIMessage("hello", id="m-greet")], "count": state.get("count", 0) + 1}


def fan_out(state: State) -> list[Send]:
    return [Send("part", {"parts": [name]}) for name in ("a", "b", "c")]


def part(state: State) -> State:
    return {"parts": [f"part {state['parts'][0]}"]}


def approve(state: State) -> State:
    answer = interrupt({"question": "approve?", "count": state["count"]})
    return {"approved": answer == "yes", "messages": [AIMessage(f"answer {answer}", id="m-answer")]}


def build(checkpointer: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node("greet", greet)
    builder.add_node("part", part)
    builder.add_node("approve", approve)
    builder.add_edge(START, "greet")
    builder.add_conditional_edges("greet", fan_out, ["part"])
    builder.add_edge("part", "approve")
    builder.add_edge("approve", END)
    return builder.compile(checkpointer=checkpointer)


def _normal(snapshot: Any) -> dict[str, Any]:
    """A history entry without what differs from thread to thread (ids, timestamps, random versions)."""
    metadata = {k: v for k, v in snapshot.metadata.items() if k in ("source", "step", "writes")}
    return {
        "values": snapshot.values, "next": snapshot.next, "metadata": metadata,
        "interrupts": [i.value for i in snapshot.interrupts],
        "tasks": sorted((t.name, repr(t.result)) for t in snapshot.tasks),
        "has_parent": snapshot.parent_config is not None,
    }  # fmt: skip


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, kwargs=CONNECTION_KWARGS) as opened:
        yield opened


async def _run(graph: Any, thread_id: str) -> list[dict[str, Any]]:
    config = {"configurable": {"thread_id": thread_id}}
    await graph.ainvoke({"messages": [HumanMessage("hi", id="m-hi")]}, config)
    await graph.ainvoke(Command(resume="yes"), config)
    return [_normal(s) async for s in graph.aget_state_history(config)]


async def _rows(pool: AsyncConnectionPool[Any], thread_id: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        counts = {}
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            cur = await conn.execute(f"SELECT count(*) AS n FROM {table} WHERE thread_id = %s", (thread_id,))
            counts[table] = (await cur.fetchone())["n"]
        cur = await conn.execute(
            "SELECT channel, type, idx, task_path FROM checkpoint_writes WHERE thread_id = %s", (thread_id,)
        )
        writes = sorted((r["channel"], r["type"], r["idx"], r["task_path"]) for r in await cur.fetchall())
        cur = await conn.execute(
            "SELECT channel, type, blob FROM checkpoint_blobs WHERE thread_id = %s AND channel = 'messages'",
            (thread_id,),
        )
        blobs = sorted((r["type"], bytes(r["blob"])) for r in await cur.fetchall())
    return {"counts": counts, "writes": writes, "message_blobs": blobs}


async def test_same_history_and_rows_as_the_stock_saver(pool: AsyncConnectionPool[Any]) -> None:
    stock, ours = AsyncPostgresSaver(pool), PooledPostgresSaver(pool)
    stock_history = await _run(build(stock), "stock-thread")
    our_history = await _run(build(ours), "our-thread")

    assert our_history == stock_history
    assert [h["metadata"]["step"] for h in our_history] == [3, 2, 1, 0, -1]  # input, start, greet, parts, approve
    assert our_history[0]["values"] == {
        "messages": [HumanMessage("hi", id="m-hi"), AIMessage("hello", id="m-greet"),
                     AIMessage("answer yes", id="m-answer")],
        "count": 1, "parts": ["part a", "part b", "part c"], "approved": True,
    }  # fmt: skip
    assert await _rows(pool, "our-thread") == await _rows(pool, "stock-thread")
    # what one saver wrote, the other reads back whole
    cross = [_normal(s) async for s in build(stock).aget_state_history({"configurable": {"thread_id": "our-thread"}})]
    assert cross == stock_history


async def test_writes_keep_the_first_value_and_special_writes_the_last(pool: AsyncConnectionPool[Any]) -> None:
    saver = PooledPostgresSaver(pool)
    config = {"configurable": {"thread_id": "writes-thread", "checkpoint_ns": "", "checkpoint_id": "c-1"}}
    await saver.aput_writes(config, [("parts", ["x"]), ("count", 1)], "task-1")
    await saver.aput_writes(config, [("parts", ["y"]), ("count", 2)], "task-1")  # a retried task: kept as first
    await saver.aput_writes(config, [("__error__", "first"), ("__error__", "second")], "task-2")
    await saver.aput_writes(config, [], "task-3")
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT task_id, idx, channel, type, blob FROM checkpoint_writes WHERE thread_id = 'writes-thread' "
            "ORDER BY task_id, idx"
        )
        rows = [(r["task_id"], r["idx"], r["channel"], saver.serde.loads_typed((r["type"], bytes(r["blob"]))))
                for r in await cur.fetchall()]  # fmt: skip
    assert rows == [("task-1", 0, "parts", ["x"]), ("task-1", 1, "count", 1), ("task-2", -1, "__error__", "second")]
