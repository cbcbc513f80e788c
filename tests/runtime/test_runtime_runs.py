"""Runs: SSE stream (events, ids, headers), wait, background + join, errors, 409 on a busy thread, replay."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from conftest import Api
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from server.runtime.streams import RunStream


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Events of an SSE body as {id, event, data}; comments are kept as {"comment": ...}."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in text.splitlines():
        if not line:
            if current:
                events.append(current)
            current = {}
        elif line.startswith(":"):
            events.append({"comment": line[1:].strip()})
        else:
            field, _, value = line.partition(": ")
            current[field] = json.loads(value) if field == "data" else value
    if current:
        events.append(current)
    return events


async def test_stream_events_in_order_with_ids_and_headers(api: Api) -> None:
    await api.sdk("operator").threads.create(thread_id="t-stream")
    body = {"assistant_id": "chain", "input": {"count": 0}, "stream_mode": ["values", "updates", "custom"]}
    response = await api["operator"].post("/threads/t-stream/runs/stream", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    location = response.headers["content-location"]
    assert location.startswith("/threads/t-stream/runs/")
    assert response.headers["location"] == f"{location}/stream"
    events = [e for e in parse_sse(response.text) if "event" in e]
    assert events[0]["event"] == "metadata" and location.endswith(events[0]["data"]["run_id"])
    assert "end" not in [e["event"] for e in events]  # the stream's close ends it, as in LangGraph Server
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    names = [e["event"] for e in events]
    assert names.count("custom") == 5 and names.count("updates") == 5 and names.count("values") == 6
    assert [e["data"]["progress"] for e in events if e["event"] == "custom"] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert events[-1] == {
        **events[-1],
        "event": "values",
        "data": {"count": 5, "steps": ["n1", "n2", "n3", "n4", "n5"]},
    }


async def test_sdk_stream_parses_llm_tokens_as_partial_and_complete_messages(api: Api) -> None:
    client = api.sdk("operator")
    thread = await client.threads.create()
    parts = [p async for p in client.runs.stream(
        thread["thread_id"], "chat", input={"messages": [{"role": "user", "content": "stock of sku 12?"}]},
        stream_mode=["messages", "values"],
    )]  # fmt: skip
    assert parts[0].event == "metadata" and parts[-1].event == "values"
    assert all(p.id for p in parts)
    partial = [p.data[0]["content"] for p in parts if p.event == "messages/partial"]
    assert len(partial) > 5 and partial == sorted(partial, key=len)  # grows token by token
    complete = [p.data[0] for p in parts if p.event == "messages/complete"]
    assert [m["content"] for m in complete] == ["stock of sku 12 at store 3 is 41 units"]
    assert complete[0]["type"] == "ai"
    final = [p.data for p in parts if p.event == "values"][-1]
    assert [m["type"] for m in final["messages"]] == ["human", "ai"]
    v2 = [p async for p in client.runs.stream(
        thread["thread_id"], "chat", input={"messages": [{"role": "user", "content": "again"}]}, version="v2",
    )]  # fmt: skip
    assert {p["type"] for p in v2} == {"metadata", "values"}


async def test_wait_background_join_list_and_get(api: Api) -> None:
    client = api.sdk("operator")
    thread = await client.threads.create()
    tid = thread["thread_id"]
    created: list[dict[str, Any]] = []
    result = await client.runs.wait(tid, "chain", input={"count": 10}, on_run_created=created.append)
    assert result == {"count": 15, "steps": ["n1", "n2", "n3", "n4", "n5"]}
    assert created and created[0]["thread_id"] == tid
    run = await client.runs.create(tid, "chain", input={"count": 0}, metadata={"ticket": "T-9"})
    assert run["status"] in ("pending", "running") and run["metadata"] == {"ticket": "T-9"}
    joined = await client.runs.join(tid, run["run_id"])
    assert joined["count"] == 5 and joined["steps"][-1] == "n5"
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
    runs = await client.runs.list(tid)
    assert [r["run_id"] for r in runs] == [run["run_id"], created[0]["run_id"]]
    assert (await client.threads.get(tid))["status"] == "idle"
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, "3f1c7f3e-0000-4000-8000-000000000000")


async def test_a_failing_run_reports_the_error_and_marks_the_thread(api: Api) -> None:
    client = api.sdk("operator")
    tid = (await client.threads.create())["thread_id"]
    parts = [p async for p in client.runs.stream(tid, "chain", input={"fail_at": "n3"}, stream_mode="updates")]
    assert [p.event for p in parts] == ["metadata", "updates", "updates", "error"]
    assert parts[3].data == {"error": "ValueError", "message": "n3 was told to fail"}
    assert "Traceback" not in str(parts[3].data)
    assert (await client.threads.get(tid))["status"] == "error"
    runs = await client.runs.list(tid)
    assert runs[0]["status"] == "error" and "n3 was told to fail" in runs[0]["error"]
    with pytest.raises(Exception, match=r"^ValueError: n3 was told to fail$"):
        await client.runs.wait(tid, "chain", input={"fail_at": "n3"})
    ok = await client.runs.wait(tid, "chain", input={"count": 0, "fail_at": ""})  # an errored thread runs again
    assert ok["count"] == 5


async def test_a_busy_thread_rejects_a_second_run_when_asked_to(api: Api) -> None:
    client = api.sdk("operator")
    tid = (await client.threads.create())["thread_id"]
    slow = await client.runs.create(tid, "chain", input={"delay": 30})
    for _ in range(100):  # busy once a worker has claimed it (at once: this process has free workers)
        if (await client.threads.get(tid))["status"] == "busy":
            break
        await asyncio.sleep(0.02)
    assert (await client.threads.get(tid))["status"] == "busy"
    with pytest.raises(ConflictError, match="in flight; multitask_strategy 'reject'"):
        await client.runs.create(tid, "chain", input={}, multitask_strategy="reject")
    with pytest.raises(httpx.HTTPStatusError) as caught:  # the SDK's wait raises httpx's error
        await client.runs.wait(tid, "chain", input={}, multitask_strategy="reject")
    assert caught.value.response.status_code == 409
    await client.runs.cancel(tid, slow["run_id"], wait=True)
    assert (await client.threads.get(tid))["status"] == "idle"
    assert (await client.runs.wait(tid, "chain", input={"delay": 0}))["count"] == 5  # free again


async def test_two_racing_runs_on_one_thread_exactly_one_wins(api: Api) -> None:
    http = api["operator"]
    for attempt in range(3):
        tid = f"race-{attempt}"
        await http.post("/threads", json={"thread_id": tid})
        body = {"assistant_id": "chain", "input": {"delay": 30}, "multitask_strategy": "reject"}
        responses = await asyncio.gather(*(http.post(f"/threads/{tid}/runs", json=body) for _ in range(4)))
        assert sorted(r.status_code for r in responses) == [200, 409, 409, 409]
        winner = next(r for r in responses if r.status_code == 200).json()
        await api.sdk("operator").runs.cancel(tid, winner["run_id"], wait=True)
        assert len(await api.sdk("operator").runs.list(tid)) == 1


async def test_resuming_a_thread_that_is_not_interrupted_is_a_409(api: Api) -> None:
    client = api.sdk("admin")
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "chain", input={})
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await client.runs.wait(tid, "chain", command={"resume": "yes"})
    assert caught.value.response.status_code == 409
    assert "not waiting at an interrupt" in caught.value.response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"assistant_id": "chain", "input": {"count": 1}, "command": {"resume": 1}}, "either input or command"),
        ({"assistant_id": "chain", "stream_mode": ["values", "everything"]}, "stream_mode"),
        ({"assistant_id": "chain", "config": {"configurable": {"__pregel_resume_map": {}}}}, "reserved for the"),
        ({"assistant_id": "chain", "config": {"configurable": {"checkpoint_id": "x"}}}, "configurable.checkpoint_id"),
        ({"assistant_id": "chain", "config": {"configurable": {"run_id": "x"}}}, "configurable.run_id"),
        ({"assistant_id": "chain", "config": {"callbacks": []}}, "config.callbacks: Extra inputs are not permitted"),
        ({"assistant_id": "chain", "config": {"recursion_limit": "9"}}, "config.recursion_limit"),
        ({"assistant_id": "chain", "context": {"store": 3}}, "context: this graph takes no context"),
        ({"assistant_id": "approval", "input": {}, "context": {"principal": {"id": "admin-1", "role": "admin"}}},
         "context.principal: set by the server"),
        ({"assistant_id": "chain", "multitask_strategy": "queue"}, "multitask_strategy"),
        ({"assistant_id": "chain", "webhook": "http://x"}, "webhook"),
        ({"assistant_id": "chain", "interrupt_before": [""]}, "interrupt_before"),
        ({"input": {}}, "assistant_id"),
    ],
)
async def test_malformed_run_payloads_are_422(api: Api, body: dict[str, Any], field: str) -> None:
    await api["operator"].post("/threads", json={"thread_id": "bad-payloads", "if_exists": "do_nothing"})
    response = await api["operator"].post("/threads/bad-payloads/runs/wait", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


async def test_missing_thread_assistant_and_checkpoint(api: Api) -> None:
    client = api.sdk("operator")
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        await client.runs.wait("ghost", "chain", input={})
    created = await client.runs.wait("ghost", "chain", input={}, if_not_exists="create")
    assert created["count"] == 1 * 5
    assert (await client.threads.get("ghost"))["metadata"] == {"graph_id": "chain", "assistant_id": "chain"}
    # an assistant the server does not serve is a 404, in LangGraph Server's words
    with pytest.raises(NotFoundError, match='No assistant found for "nope"'):
        await client.runs.create("ghost", "nope", input={})
    with pytest.raises(UnprocessableEntityError, match="checkpoint_id: String should match pattern"):
        await client.runs.create("ghost", "chain", checkpoint_id="1f0-missing")
    missing = "1f0b7e3c-0000-6000-8000-000000000000"  # well formed, not in this thread: a conflict with its history
    with pytest.raises(ConflictError, match=f"checkpoint {missing} is not in the history of thread ghost"):
        await client.runs.create("ghost", "chain", checkpoint_id=missing)


async def test_reattaching_with_last_event_id_replays_what_was_missed(api: Api) -> None:
    client = api.sdk("operator")
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "chain", input={"count": 0}, stream_mode=["updates", "custom"])
    await client.runs.join(tid, run["run_id"])
    everything = [p async for p in client.runs.join_stream(tid, run["run_id"])]
    assert [p.event for p in everything][:2] == ["metadata", "custom"] and "end" not in {p.event for p in everything}
    missed = [p async for p in client.runs.join_stream(tid, run["run_id"], last_event_id=everything[4].id)]
    assert [p.id for p in missed] == [p.id for p in everything[5:]]
    only_updates = [p async for p in client.runs.join_stream(tid, run["run_id"], stream_mode="updates")]
    assert {p.event for p in only_updates} == {"metadata", "updates"}


async def test_cancel_stops_a_background_run(api: Api) -> None:
    client = api.sdk("operator")
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "chain", input={"delay": 30})
    await asyncio.sleep(0.1)
    await client.runs.cancel(tid, run["run_id"], wait=True)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert (await client.threads.get(tid))["status"] == "idle"
    with pytest.raises(ConflictError, match="already ended"):
        await client.runs.cancel(tid, run["run_id"])
    with pytest.raises(ConflictError, match="already ended"):
        await client.runs.cancel(tid, run["run_id"], action="rollback")


async def test_the_replay_buffer_is_bounded() -> None:
    stream = RunStream(maxlen=10)
    for index in range(25):
        stream.publish("custom", {"i": index})
    stream.close()
    kept = [e async for e in stream.listen(after=3)]
    assert [e.seq for e in kept] == list(range(16, 26))
    assert [e.seq for e in [e async for e in stream.listen(after=20)]] == [21, 22, 23, 24, 25]


async def test_a_context_the_graph_does_not_accept_is_a_422(api: Api) -> None:
    tid = (await api.sdk("operator").threads.create())["thread_id"]
    response = await api["operator"].post(
        f"/threads/{tid}/runs/wait",
        json={"assistant_id": "approval", "input": {"order_id": "x", "amount": 1}, "context": {"store_id": 3}},
    )
    assert response.status_code == 422 and "context" in response.json()["detail"]
    assert (await api.sdk("viewer").threads.get(tid))["status"] == "idle"
