"""The run queue across processes, over real sockets: a ``rimas worker`` executes what a server with no workers
queues (its events reach the client through the database); the ``metadata`` event goes out before a queued run
starts; a server killed (SIGKILL) between a side effect and the next checkpoint has its run re-executed from the
last checkpoint with one ledger row; a server stopped with SIGTERM hands its running run to another process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
from conftest import API_KEYS, KEYS, write_langgraph_json

Factory = Callable[..., Any]


def env_for(database_url: str, folder: Any, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "RIMAS_SEED_ON_START": "false",
        "RIMAS_TRAIN_MODELS_ON_START": "false",
        "RIMAS_API_KEYS": API_KEYS,
        "RIMAS_LANGGRAPH_CONFIG": str(write_langgraph_json(folder)),
        "RIMAS_LOG_JSON": "false",
        **extra,
    }


def http(server: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, headers={"x-api-key": KEYS["operator"]}, timeout=30)


def sse(lines: list[str]) -> list[dict[str, Any]]:
    events, current = [], {}
    for line in lines:
        if not line:
            if current:
                events.append(current)
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = json.loads(value) if name == "data" else value
    return events


async def run_row(client: httpx.AsyncClient, tid: str, run_id: str, wanted: tuple[str, ...], seconds: float = 30):
    deadline = time.monotonic() + seconds
    while True:
        row = (await client.get(f"/threads/{tid}/runs/{run_id}")).json()
        if row["status"] in wanted or time.monotonic() > deadline:
            return row
        await asyncio.sleep(0.1)


async def test_a_worker_process_executes_what_a_server_queues(serve_process: Factory, database_url: str,
                                                              tmp_path: Any) -> None:  # fmt: skip
    server = serve_process(env_for(database_url, tmp_path, RIMAS_WORKERS="0"))
    worker = serve_process(env_for(database_url, tmp_path, RIMAS_WORKERS="4"), command="worker", data="worker")
    server.start()
    worker.start(timeout=90)
    async with http(server) as client:
        tid = (await client.post("/threads", json={})).json()["thread_id"]
        body = {"assistant_id": "chain", "input": {"count": 0}, "stream_mode": ["updates", "custom"]}
        async with client.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
            events = sse([line async for line in response.aiter_lines()])
        names = [e["event"] for e in events]
        assert names[0] == "metadata" and "end" not in names  # no end event, as in LangGraph Server
        assert names.count("updates") == 5 and names.count("custom") == 5
        assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
        run_id = events[0]["data"]["run_id"]
        row = await run_row(client, tid, run_id, ("success",))
        assert row["status"] == "success"
        # the worker executed it: its events are in the database, so the stream replays from any process
        async with client.stream("GET", f"/threads/{tid}/runs/{run_id}/stream",
                                 headers={"Last-Event-ID": "3"}) as response:  # fmt: skip
            replay = sse([line async for line in response.aiter_lines()])
        assert [int(e["id"]) for e in replay] == list(range(4, len(events) + 1)), (names, replay)
        # a queued run's metadata goes out at once, before a worker gets to it
        slow = {"assistant_id": "chain", "input": {"delay": 2.0}}
        await client.post(f"/threads/{tid}/runs", json=slow)
        started = time.perf_counter()
        async with client.stream("POST", f"/threads/{tid}/runs/stream", json={"assistant_id": "chain"}) as response:
            lines = response.aiter_lines()
            head = [await anext(lines) for _ in range(3)]
            waited = time.perf_counter() - started
            rest = [line async for line in lines]
        assert "event: metadata" in head and waited < 1.0, (head, waited)
        assert "event: values" in rest and "event: end" not in rest
    assert worker.stop() in (0, -signal.SIGTERM)


def ledger_rows(database_url: str, tid: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM test_ledger WHERE thread_id = %s", (tid,)).fetchone()
    return int(row[0]) if row else 0


async def test_a_killed_server_run_is_re_executed_without_repeating_its_side_effect(
    serve_process: Factory, database_url: str, tmp_path: Any
) -> None:
    server = serve_process(env_for(database_url, tmp_path, RIMAS_RUN_LEASE_SECONDS="2"))
    server.start()
    async with http(server) as client:
        tid = (await client.post("/threads", json={})).json()["thread_id"]
        body = {"assistant_id": "ledger", "input": {"action_id": "refund-1", "amount": 120.0, "delay": 3.0}}
        run = (await client.post(f"/threads/{tid}/runs", json=body)).json()
        deadline = time.monotonic() + 20
        while not await asyncio.to_thread(_has_ledger_table_row, database_url, tid):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    os.kill(server.proc.pid, signal.SIGKILL)  # between the ledger write and the checkpoint after it
    server.proc.wait(timeout=30)
    server.proc = None
    server.start()
    async with http(server) as client:
        row = await run_row(client, tid, run["run_id"], ("success", "error"))
        assert row["status"] == "success", row
        state = (await client.get(f"/threads/{tid}/state")).json()["values"]
        async with client.stream("GET", f"/threads/{tid}/runs/{run['run_id']}/stream") as response:
            events = sse([line async for line in response.aiter_lines()])
    assert state["charged"] is True and state["confirmed"] is True
    assert await asyncio.to_thread(ledger_rows, database_url, tid) == 1
    with psycopg.connect(database_url) as conn:
        attempt = conn.execute("SELECT attempt FROM runs WHERE run_id = %s", (run["run_id"],)).fetchone()
    assert attempt is not None and attempt[0] == 2
    assert any(e["event"] == "metadata" and e["data"].get("attempt") == 2 for e in events), events


def _has_ledger_table_row(database_url: str, tid: str) -> bool:
    try:
        return ledger_rows(database_url, tid) > 0
    except psycopg.errors.UndefinedTable:
        return False


async def test_sigterm_hands_a_running_run_to_another_process(
    serve_process: Factory, database_url: str, tmp_path: Any
) -> None:
    server = serve_process(env_for(database_url, tmp_path, RIMAS_DRAIN_SECONDS="0.5"))
    worker = serve_process(env_for(database_url, tmp_path, RIMAS_WORKERS="2"), command="worker", data="worker")
    server.start()
    worker.start(timeout=90)
    async with http(server) as client:
        tid = (await client.post("/threads", json={})).json()["thread_id"]
        # the server claims it at once (it accepted it and has free workers), then is told to stop
        body = {"assistant_id": "chain", "input": {"count": 0, "delay": 4.0}}
        run = (await client.post(f"/threads/{tid}/runs", json=body)).json()
        row = await run_row(client, tid, run["run_id"], ("running",))
        assert row["status"] == "running" and row["attempt"] == 1
    server.stop(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while True:
        status, attempt = await asyncio.to_thread(_status_attempt, database_url, run["run_id"])
        if status in ("success", "error") or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert (status, attempt) == ("success", 2)
    worker.stop()


def _status_attempt(database_url: str, run_id: str) -> tuple[str, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status, attempt FROM runs WHERE run_id = %s", (run_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


async def test_two_servers_share_the_runs_and_finish_a_killed_ones_exactly_once(
    serve_process: Factory, database_url: str, tmp_path: Any
) -> None:
    env = env_for(database_url, tmp_path, RIMAS_RUN_LEASE_SECONDS="2")
    first, second = serve_process(env, data="a"), serve_process(env, data="b")
    first.start()
    second.start()

    async def start_run(client: httpx.AsyncClient, index: int) -> tuple[str, str]:
        tid = (await client.post("/threads", json={})).json()["thread_id"]
        body = {"assistant_id": "ledger", "input": {"action_id": f"act-{index}", "amount": 1.0, "delay": 0.5}}
        return tid, (await client.post(f"/threads/{tid}/runs", json=body)).json()["run_id"]

    async with http(first) as a, http(second) as b:
        batch = await asyncio.gather(*(start_run((a, b)[i % 2], i) for i in range(100)))
        os.kill(first.proc.pid, signal.SIGKILL)  # mid-batch: some of its runs execute, some wait in the queue
        first.proc.wait(timeout=30)
        first.proc = None
        batch += await asyncio.gather(*(start_run(b, i) for i in range(100, 200)))
        run_ids = [run_id for _, run_id in batch]
        deadline = time.monotonic() + 120
        while (statuses := await asyncio.to_thread(_statuses, database_url, run_ids)) != {"success": 200}:
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(0.25)
        tid, run_id = batch[0]  # accepted by the killed server: its stream still ends, from the survivor
        async with b.stream("GET", f"/threads/{tid}/runs/{run_id}/stream") as response:
            events = sse([line async for line in response.aiter_lines()])
        assert events[0]["event"] == "metadata" and events[-1]["event"] == "values"
    with psycopg.connect(database_url) as conn:
        ledger = conn.execute("SELECT count(*), count(DISTINCT thread_id) FROM test_ledger WHERE thread_id = "
                              "ANY(%s)", ([t for t, _ in batch],)).fetchone()  # fmt: skip
        again = conn.execute("SELECT count(*) FROM runs WHERE run_id = ANY(%s::uuid[]) AND attempt > 1",
                             (run_ids,)).fetchone()  # fmt: skip
    assert ledger == (200, 200)  # every run's side effect exactly once
    assert again is not None and again[0] > 0  # the killed server's runs were executed again by the survivor


def _statuses(database_url: str, run_ids: list[str]) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT status, count(*) FROM runs WHERE run_id = ANY(%s::uuid[]) GROUP BY status",
                            (run_ids,)).fetchall()  # fmt: skip
    return {status: count for status, count in rows}
