"""``rimas serve`` as a real process driven by the langgraph-sdk client: a run interrupts, the server is
restarted (SIGTERM), the approval is resumed after the restart; streaming over real sockets (heartbeats,
disconnects, Last-Event-ID reconnects); a killed server's running run is recovered at the next start."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEYS, KEYS, write_langgraph_json
from langgraph_sdk import get_client

RIMAS = Path(sys.executable).parent / "rimas"
REFUND = {"order_id": "R-1", "amount": 120.0}


class Server:
    """A ``rimas serve`` process (the shared ``serve_process`` fixture) with the test graphs and API keys."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.log = process.log

    def start(self) -> None:
        self.process.env.setdefault("RIMAS_LANGGRAPH_CONFIG", str(write_langgraph_json(self.process.workdir)))
        self.process.start(ready="/ok", timeout=60)

    @property
    def url(self) -> str:
        return str(self.process.url)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        return int(self.process.stop(sig))

    def sdk(self, role: str) -> Any:
        return get_client(url=self.url, api_key=KEYS[role])

    def http(self, role: str, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"x-api-key": KEYS[role]}, **kwargs)


@pytest.fixture
def server(serve_process: Any, database_url: str) -> Server:
    return Server(serve_process({
        "DATABASE_URL": database_url,
        "RIMAS_SEED_ON_START": "false",
        "RIMAS_TRAIN_MODELS_ON_START": "false",
        "RIMAS_API_KEYS": API_KEYS,
        "RIMAS_SSE_PING_SECONDS": "0.3",
    }))  # fmt: skip


async def test_interrupt_restart_then_resume_with_the_sdk(server: Server) -> None:
    server.start()
    operator = server.sdk("operator")
    await operator.threads.create(thread_id="restart-1", metadata={"case": "late parcel"})
    parts = [p async for p in operator.runs.stream(
        "restart-1", "approval", input=REFUND, stream_mode=["values", "updates"]
    )]  # fmt: skip
    assert parts[0].event == "metadata" and "end" not in {p.event for p in parts}
    assert all(p.id for p in parts)
    asked = [p.data["__interrupt__"] for p in parts if p.event == "updates" and "__interrupt__" in p.data]
    assert asked and asked[0][0]["value"]["action_requests"][0]["amount"] == 120.0
    last_values = [p.data for p in parts if p.event == "values"][-1]
    assert last_values["__interrupt__"][0]["id"] == asked[0][0]["id"]
    assert (await operator.threads.get("restart-1"))["status"] == "interrupted"

    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "resources closed" in server.log.read_text()
    server.start()

    async with server.http("viewer") as viewer:
        inbox = (await viewer.get("/approvals")).json()
    assert [i["thread_id"] for i in inbox["items"]] == ["restart-1"]
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await server.sdk("viewer").runs.wait("restart-1", "approval", command={"resume": {"decisions": []}})
    assert caught.value.response.status_code == 403
    approver = server.sdk("approver")
    result = await approver.runs.wait(
        "restart-1", "approval",
        command={"resume": {"decisions": [{"type": "approve", "comment": "approved after the restart"}]}},
    )  # fmt: skip
    assert result["outcome"] == "refunded" and result["refunded"] == 120.0
    assert result["decision"]["actor"] == {"id": "approver-1", "role": "approver"}
    assert result["log"] == ["prepare", "approve", "finalize"]
    thread = await approver.threads.get("restart-1")
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    history = await approver.threads.get_history("restart-1", limit=100)
    assert history[0]["values"]["outcome"] == "refunded"
    async with server.http("viewer") as viewer:
        audit = (await viewer.get("/threads/restart-1/audit")).json()["events"]
    decision = next(e for e in audit if e["kind"] == "decision")
    assert decision["who"] == "approver-1 (approver)" and "approved after the restart" in decision["what"]
    server.stop()


async def _first_events(response: httpx.Response, count: int) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if current:
                events.append(current)
                current = {}
                if len(events) == count:
                    break
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
    return events


async def _status(client: httpx.AsyncClient, thread_id: str, run_id: str, wanted: str) -> str:
    status = ""
    for _ in range(100):
        status = (await client.get(f"/threads/{thread_id}/runs/{run_id}")).json()["status"]
        if status == wanted:
            break
        await asyncio.sleep(0.05)
    return status


async def test_streaming_over_sockets_and_recovery_after_a_kill(server: Server) -> None:
    server.process.env["RIMAS_RUN_MAX_ATTEMPTS"] = "1"  # a killed run is not re-executed here (see test_run_queue)
    server.start()
    async with server.http("operator", timeout=10) as http:
        for tid in ("hb", "cancel", "wait", "replay", "killed"):
            await http.post("/threads", json={"thread_id": tid})

        # heartbeat comments while a slow node runs
        body = {"assistant_id": "chain", "input": {"delay": 1.0}, "stream_mode": ["updates"]}
        async with http.stream("POST", "/threads/hb/runs/stream", json=body) as response:
            lines = [line async for line in response.aiter_lines()]
        assert any(line.startswith(": ping") for line in lines), lines[:10]
        assert lines.count("event: updates") == 5 and "event: end" not in lines

        # a streaming client that disconnects cancels its run when it asks for that (the default is continue)
        body = {"assistant_id": "chain", "input": {"delay": 5}, "stream_mode": ["custom"], "on_disconnect": "cancel"}
        async with http.stream("POST", "/threads/cancel/runs/stream", json=body) as response:
            run_id = response.headers["content-location"].rsplit("/", 1)[1]
            assert [e["event"] for e in await _first_events(response, 2)] == ["metadata", "custom"]
        assert await _status(http, "cancel", run_id, "interrupted") == "interrupted"

        # a waiting client that goes away does not stop the run (on_disconnect defaults to continue)
        body = {"assistant_id": "chain", "input": {"delay": 2.0}}
        with pytest.raises(TimeoutError):  # the client gives up (and drops the connection) after 0.4 s
            await asyncio.wait_for(http.post("/threads/wait/runs/wait", json=body), timeout=0.4)
        runs = (await http.get("/threads/wait/runs")).json()
        joined = await http.get(f"/threads/wait/runs/{runs[0]['run_id']}/join")
        assert joined.text.startswith("\n")  # keep-alive blank lines were sent while the run went on
        assert joined.json()["count"] == 5

        # reconnecting with Last-Event-ID resumes after the last event seen, live
        body = {"assistant_id": "chain", "input": {"delay": 0.8}, "stream_mode": ["custom", "updates"]}
        run = (await http.post("/threads/replay/runs", json=body)).json()
        stream_url = f"/threads/replay/runs/{run['run_id']}/stream"
        async with http.stream("GET", stream_url) as response:
            first = await _first_events(response, 2)
        async with http.stream("GET", stream_url, headers={"Last-Event-ID": first[-1]["id"]}) as response:
            rest = await _first_events(response, 100)
        async with http.stream("GET", stream_url) as response:
            everything = await _first_events(response, 100)
        assert [e["id"] for e in first + rest] == [e["id"] for e in everything]
        assert len(everything) == 1 + 5 + 5 and "end" not in {e["event"] for e in everything}

        # a run executing when the server is killed, with no attempts left, is an error at the next start
        killed = (
            await http.post("/threads/killed/runs", json={"assistant_id": "chain", "input": {"delay": 60}})
        ).json()
        assert await _status(http, "killed", killed["run_id"], "running") == "running"
    server.stop(signal.SIGKILL)
    server.start()
    async with server.http("operator") as http:
        row = (await http.get(f"/threads/killed/runs/{killed['run_id']}")).json()
        assert row["status"] == "error" and "worker stopped 1 times" in row["error"]
        assert (await http.get("/threads/killed")).json()["status"] == "error"  # as after any failed run
        again = (
            await http.post("/threads/killed/runs/wait", json={"assistant_id": "chain", "input": {"delay": 0}})
        ).json()
        assert again["count"] == 5
        # re-attaching to a run of the dead process gives its outcome, not a hang
        async with http.stream("GET", f"/threads/killed/runs/{killed['run_id']}/stream") as response:
            events = await _first_events(response, 10)
        assert [e["event"] for e in events] == ["metadata", "error"]
    server.stop()
