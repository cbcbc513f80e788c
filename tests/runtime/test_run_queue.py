"""The run queue in one process: the four multitask strategies (the thread's messages after each, with the
second run arriving mid-way and with two racing requests), ``after_seconds``, cancelling a queued run, and
run webhooks delivered signed to a real receiver. Several processes: ``test_run_queue_processes.py``."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import API_KEYS, KEYS, Api, write_langgraph_json
from langgraph_sdk.errors import ConflictError, NotFoundError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.app import create_app
from server.runtime.webhooks import verify

SLOW = "slow question"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def messages(api: Api, tid: str) -> list[str]:
    state = (await api.sdk("viewer").threads.get_state(tid))["values"]
    return [m["content"] for m in state.get("messages", [])]


async def _true(value: bool) -> bool:
    return value


async def until(check: Callable[[], Any], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def first_run_half_done(api: Api) -> tuple[str, str]:
    """A thread whose first run has written its ``think`` checkpoint and now waits in ``answer``."""
    client = api.sdk("operator")
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.create(tid, "slow_chat", input={"messages": [{"role": "user", "content": SLOW}]})

    async def thought() -> bool:
        return len(await messages(api, tid)) == 2

    await until(thought)
    return tid, first["run_id"]


def second(content: str) -> dict[str, Any]:
    return {"input": {"messages": [{"role": "user", "content": content}]}}


async def test_enqueue_runs_the_second_run_after_the_first(api: Api) -> None:
    client = api.sdk("operator")
    tid, first = await first_run_half_done(api)
    queued = await client.runs.create(tid, "slow_chat", **second("next"))  # enqueue is the default
    assert queued["status"] == "pending" and queued["multitask_strategy"] == "enqueue"
    await client.runs.join(tid, queued["run_id"])
    assert await messages(api, tid) == [SLOW, f"thinking about {SLOW}", f"answer to {SLOW}",
                                        "next", "thinking about next", "answer to next"]  # fmt: skip
    runs = {r["run_id"]: r for r in await client.runs.list(tid)}
    assert runs[first]["status"] == runs[queued["run_id"]]["status"] == "success"


async def test_reject_refuses_while_a_run_is_in_flight(api: Api) -> None:
    client = api.sdk("operator")
    tid, first = await first_run_half_done(api)
    with pytest.raises(ConflictError, match="multitask_strategy 'reject'"):
        await client.runs.create(tid, "slow_chat", multitask_strategy="reject", **second("next"))
    await client.runs.join(tid, first)
    assert await messages(api, tid) == [SLOW, f"thinking about {SLOW}", f"answer to {SLOW}"]


async def test_interrupt_stops_the_first_run_and_keeps_its_progress(api: Api) -> None:
    client = api.sdk("operator")
    tid, first = await first_run_half_done(api)
    newer = await client.runs.create(tid, "slow_chat", multitask_strategy="interrupt", **second("next"))
    await client.runs.join(tid, newer["run_id"])
    assert await messages(api, tid) == [SLOW, f"thinking about {SLOW}",  # the first run's progress is kept
                                        "next", "thinking about next", "answer to next"]  # fmt: skip
    assert (await client.runs.get(tid, first))["status"] == "interrupted"


async def test_rollback_removes_the_first_run_and_what_it_wrote(api: Api) -> None:
    client = api.sdk("operator")
    tid, first = await first_run_half_done(api)
    newer = await client.runs.create(tid, "slow_chat", multitask_strategy="rollback", **second("next"))
    await client.runs.join(tid, newer["run_id"])
    assert await messages(api, tid) == ["next", "thinking about next", "answer to next"]
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, first)
    history = await client.threads.get_history(tid, limit=50)
    assert all(h["metadata"].get("run_id") != first for h in history)


async def test_two_racing_requests_with_each_strategy(api: Api) -> None:
    """Both requests leave at once; the thread ends consistent whichever one the database saw first."""
    http = api["operator"]
    for strategy in ("enqueue", "reject", "interrupt", "rollback"):
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        bodies = [{"assistant_id": "slow_chat", "multitask_strategy": strategy,
                   "input": {"messages": [{"role": "user", "content": text}]}} for text in ("one", "two")]  # fmt: skip
        answers = await asyncio.gather(*(http.post(f"/threads/{tid}/runs", json=b) for b in bodies))
        accepted = [a.json() for a in answers if a.status_code == 200]
        assert sorted(a.status_code for a in answers) == ([200, 409] if strategy == "reject" else [200, 200])
        for run in accepted:
            joined = await http.get(f"/threads/{tid}/runs/{run['run_id']}/join")
            assert joined.status_code == 200 or (strategy == "rollback" and joined.status_code == 404)
        texts = await messages(api, tid)
        answered = [t for t in texts if t.startswith("answer to ")]
        listed = await api.sdk("viewer").runs.list(tid)
        assert texts[-1].startswith("answer to "), (strategy, texts)
        # What a run left is whole supersteps, in order: its question, its thinking, its answer. Only a run
        # stopped by the "interrupt" strategy may end early (its progress is kept), and never the last one.
        starts = [i for i, text in enumerate(texts) if text in ("one", "two")]
        assert starts[:1] == [0], (strategy, texts)
        blocks = [texts[i:j] for i, j in zip(starts, [*starts[1:], len(texts)], strict=True)]
        for block in blocks:
            whole = [block[0], f"thinking about {block[0]}", f"answer to {block[0]}"]
            assert block == whole[: len(block)], (strategy, texts)
            assert block == whole or (strategy == "interrupt" and block is not blocks[-1]), (strategy, texts)
        if strategy == "enqueue":
            assert len(answered) == 2 and len(texts) == 6 and len(listed) == 2, texts
        if strategy == "reject":
            assert len(answered) == 1 and len(texts) == 3 and len(listed) == 1, texts
        if strategy == "rollback":  # a rolled-back run leaves neither messages nor a record (unless it had ended)
            assert len(listed) == len(answered) and len(texts) == 3 * len(answered), (strategy, texts)
        if strategy == "interrupt":
            assert {r["status"] for r in listed} <= {"success", "interrupted"} and len(listed) == 2


async def test_after_seconds_delays_the_start(api: Api) -> None:
    client = api.sdk("operator")
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "chain", input={"count": 0}, after_seconds=1.5)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "pending"
    await client.runs.join(tid, run["run_id"])
    row = await client.runs.get(tid, run["run_id"])
    assert row["status"] == "success"
    async with api.app.state.resources.pool.connection() as conn:
        cur = await conn.execute("SELECT extract(epoch FROM started_at - created_at) AS waited, attempt "
                                 "FROM runs WHERE run_id = %s", (run["run_id"],))  # fmt: skip
        recorded = await cur.fetchone()
    assert recorded["waited"] >= 1.4 and recorded["attempt"] == 1


async def test_cancelling_a_queued_run_means_it_never_starts(api: Api) -> None:
    client = api.sdk("operator")
    tid, first = await first_run_half_done(api)
    queued = await client.runs.create(tid, "slow_chat", **second("never"))
    await client.runs.cancel(tid, queued["run_id"], wait=True)
    await client.runs.join(tid, first)
    assert (await client.runs.get(tid, queued["run_id"]))["status"] == "interrupted"
    assert "never" not in await messages(api, tid)


# -- webhooks ---------------------------------------------------------------------------------------------


class Receiver:
    """A real HTTP server on 127.0.0.1 recording what it is POSTed."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.port = free_port()
        self.got = asyncio.Event()

    async def hook(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        self.got.set()
        return Response(status_code=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = Starlette(routes=[Route("/hook", found.hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=found.port, log_config=None))
    task = asyncio.create_task(server.serve())
    await until(lambda: _true(server.started))
    yield found
    server.should_exit = True
    await task


async def test_a_finished_run_is_posted_signed_to_its_webhook(
    settings_factory: Callable[..., Any], database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    settings = settings_factory(database_url=database_url, seed_on_start=False, api_keys=API_KEYS,
                                langgraph_config=write_langgraph_json(tmp_path), webhook_allowed_hosts="127.0.0.1",
                                webhook_secret="s3cret")  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rimas.test",
                                     headers={"x-api-key": KEYS["operator"]}) as http:  # fmt: skip
            tid = (await http.post("/threads", json={})).json()["thread_id"]
            url = f"http://127.0.0.1:{receiver.port}/hook"
            refused = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "chain", "webhook":
                                                                    "http://169.254.169.254/latest"})  # fmt: skip
            assert refused.status_code == 422 and refused.json()["detail"].startswith("webhook: ")
            run = (await http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "chain", "webhook": url,
                                                                      "input": {"count": 0}})).json()  # fmt: skip
            assert run["count"] == 5
            await asyncio.wait_for(receiver.got.wait(), 10)
    [(headers, body)] = receiver.received
    assert verify(body, "s3cret", int(headers["x-rimas-timestamp"]), headers["x-rimas-signature"])
    payload = json.loads(body)
    assert payload["thread_id"] == tid and payload["status"] == "success" and payload["values"]["count"] == 5


async def test_stream_resumable_records_the_events_for_replay_anywhere(api: Api) -> None:
    client = api.sdk("operator")
    tid = (await client.threads.create())["thread_id"]
    kept = await client.runs.create(tid, "chain", input={"count": 0}, stream_mode=["updates"], stream_resumable=True)
    await client.runs.join(tid, kept["run_id"])
    plain = await client.runs.create(tid, "chain", input={"count": 0}, stream_mode=["updates"])
    await client.runs.join(tid, plain["run_id"])
    async with api.app.state.resources.pool.connection() as conn:
        cur = await conn.execute("SELECT run_id::text AS run_id, array_agg(event ORDER BY seq) AS events "
                                 "FROM run_events GROUP BY run_id")  # fmt: skip
        recorded = {r["run_id"]: r["events"] for r in await cur.fetchall()}
    assert recorded[kept["run_id"]] == ["metadata"] + ["updates"] * 5 + ["end"]
    assert plain["run_id"] not in recorded  # executed where it was accepted: its listeners read memory


async def test_a_listener_elsewhere_waits_for_events_recorded_after_the_runs_final_status(api: Api) -> None:
    """Another process's run: its status is final before its writer has recorded its last batch (a busy machine).
    The listener gets the recorded events up to the recorded end, and does not stop before them."""
    client = api.sdk("operator")
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "chain", input={"count": 0}, stream_mode=["updates"], stream_resumable=True)
    await client.runs.join(tid, run["run_id"])
    api.runtime.manager.active.pop(run["run_id"])  # as if another process had executed it
    pool = api.app.state.resources.pool
    async with pool.connection() as conn:  # its last batch (the fifth update and the end) is not recorded yet
        cur = await conn.execute("DELETE FROM run_events WHERE run_id = %s AND seq > 5 RETURNING seq, event, data",
                                 (run["run_id"],))  # fmt: skip
        late = await cur.fetchall()

    async def record_late() -> None:
        await asyncio.sleep(3.0)  # longer than a listener used to wait
        async with pool.connection() as conn:
            for row in late:
                await conn.execute("INSERT INTO run_events (run_id, seq, event, data) VALUES (%s, %s, %s, %s)",
                                   (run["run_id"], row["seq"], row["event"], row["data"]))  # fmt: skip

    writer = asyncio.create_task(record_late())
    async with api["viewer"].stream("GET", f"/threads/{tid}/runs/{run['run_id']}/stream",
                                    headers={"Last-Event-ID": "3"}) as response:  # fmt: skip
        lines = [line async for line in response.aiter_lines()]
    await writer
    got = [(line.split(": ", 1)[1]) for line in lines if line.startswith(("id: ", "event: "))]
    assert got == ["4", "updates", "5", "updates", "6", "updates"]  # the end is the stream's close


async def test_a_run_people_wait_on_goes_before_queued_background_runs(
    settings_factory: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    """One worker, busy; three background runs (priority -1, as the deviation auto-start queues them) wait; a run
    queued after them at the default priority is the next one taken."""
    from server.auth import Principal
    from server.runtime.schemas import RunCreate

    settings = settings_factory(database_url=database_url, seed_on_start=False, api_keys=API_KEYS, workers=1,
                                langgraph_config=write_langgraph_json(tmp_path))  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        manager = app.state.resources.runtime.manager
        system = Principal(id="system:auto-start", role="operator")

        def body(content: str) -> RunCreate:
            return RunCreate(assistant_id="slow_chat", if_not_exists="create", **second(content))

        busy = await manager.start("prio-busy", body(SLOW), system, "background")
        background = [await manager.start(f"prio-bg-{i}", body(f"bg {i}"), system, "background", priority=-1)
                      for i in range(3)]  # fmt: skip
        person = await manager.start("prio-person", body("a person waits"), system, "background")
        for run in (busy, *background, person):
            await manager.result(run.thread_id, run.run_id)
        async with app.state.resources.pool.connection() as conn:
            cur = await conn.execute("SELECT thread_id FROM runs WHERE thread_id LIKE 'prio-%' ORDER BY started_at")
            order = [r["thread_id"] for r in await cur.fetchall()]
    assert order == ["prio-busy", "prio-person", "prio-bg-0", "prio-bg-1", "prio-bg-2"]
