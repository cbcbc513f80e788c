"""LangGraph Studio against the server: the calls the hosted Studio page makes to a local server.

Studio lists the graphs with ``POST /assistants/search {metadata: {created_by: "system"}}``, draws them with
``GET /assistants/{id}/graph?xray``, ``/subgraphs`` and ``/schemas``, posts JSON bodies as ``text/plain`` (a
CORS "simple" request), reads states at a checkpoint (``GET /threads/{id}/state/{checkpoint_id}``, ``POST
/threads/{id}/state/checkpoint``), edits a state and forks a run from it, copies threads, and gates features
on ``/info``'s version. The page is served from another origin, so the API answers CORS preflights for the
configured origins, with ``Access-Control-Allow-Private-Network: true`` for Chrome's private network access.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEYS, KEYS, Api, write_langgraph_json

from server.app import create_app

STUDIO = "https://smith.langchain.com"
GRAPHS = {"approval", "chain", "chat", "chat_hitl", "hitl_agent", "slow_chat", "ledger"}
PLAIN = {"content-type": "text/plain;charset=UTF-8"}


def sse_events(text: str) -> list[tuple[str, Any]]:
    events, name = [], ""
    for line in text.splitlines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[len("data: ") :])))
    return events


async def chain_thread(api: Api) -> tuple[str, list[dict[str, Any]]]:
    """A thread that ran the five-node chain, and its checkpoints (newest first)."""
    client = api.sdk("operator")
    thread_id = str((await client.threads.create())["thread_id"])
    await client.runs.wait(thread_id, "chain", input={"count": 0})
    return thread_id, list(await client.threads.get_history(thread_id, limit=100))


def after_step(history: list[dict[str, Any]], steps: list[str]) -> dict[str, Any]:
    return next(s for s in history if s["values"].get("steps") == steps)


async def test_studio_lists_and_draws_the_graphs(api: Api) -> None:
    client = api.sdk("viewer")
    assistants = await client.assistants.search(metadata={"created_by": "system"}, limit=100, offset=0)
    assert {a["graph_id"] for a in assistants} == GRAPHS
    assert all(a["metadata"]["created_by"] == "system" and a["assistant_id"] for a in assistants)
    assert await client.assistants.search(metadata={"created_by": "someone-else"}) == []
    plain = {n["id"] for n in (await client.assistants.get_graph("chat_hitl"))["nodes"]}
    assert {"lookup", "answer", "review", "outcome"} <= plain and "lookup:fetch_order" not in plain
    xray = {n["id"] for n in (await client.assistants.get_graph("chat_hitl", xray=True))["nodes"]}
    assert "lookup:fetch_order" in xray
    subgraphs = await client.assistants.get_subgraphs("chat_hitl")
    assert set(subgraphs) == {"lookup"}
    assert {"input_schema", "output_schema", "state_schema"} <= set(subgraphs["lookup"])
    assert await client.assistants.get_subgraphs("chain") == {}
    schemas = await client.assistants.get_schemas("chat_hitl")
    assert schemas["graph_id"] == "chat_hitl"
    assert "messages" in schemas["input_schema"]["properties"]
    assert {"messages", "order", "decision"} <= set(schemas["state_schema"]["properties"])


async def test_json_bodies_sent_as_text_plain_are_read(api: Api) -> None:
    thread_id, _ = await chain_thread(api)
    found = await api["viewer"].post("/threads/search", headers=PLAIN,
                                     content=json.dumps({"metadata": {"graph_id": "chain"}, "limit": 100}))  # fmt: skip
    assert found.status_code == 200, found.text
    assert thread_id in {t["thread_id"] for t in found.json()}
    assert all(t["metadata"]["graph_id"] == "chain" for t in found.json())
    listed = await api["viewer"].post("/assistants/search", headers=PLAIN,
                                      content=json.dumps({"metadata": {"created_by": "system"}}))  # fmt: skip
    assert listed.status_code == 200 and {a["graph_id"] for a in listed.json()} == GRAPHS
    fresh = (await api.sdk("operator").threads.create())["thread_id"]
    body = {"assistant_id": "chain", "input": {"count": 10}, "stream_mode": ["values"]}
    streamed = await api["operator"].post(f"/threads/{fresh}/runs/stream", headers=PLAIN, content=json.dumps(body))
    assert streamed.status_code == 200, streamed.text
    values = [data for name, data in sse_events(streamed.text) if name == "values"]
    assert values[-1]["count"] == 15


async def test_state_at_a_checkpoint_both_ways(api: Api) -> None:
    thread_id, history = await chain_thread(api)
    two = after_step(history, ["n1", "n2"])
    checkpoint_id = two["checkpoint"]["checkpoint_id"]
    client = api.sdk("viewer")
    by_get = await client.threads.get_state(thread_id, checkpoint_id=checkpoint_id)
    checkpoint = {"checkpoint_id": checkpoint_id, "checkpoint_ns": ""}
    by_post = await client.threads.get_state(thread_id, checkpoint=checkpoint)
    for state in (by_get, by_post):
        assert state["values"] == {"count": 2, "steps": ["n1", "n2"]}
        assert state["next"] == ["n3"] and state["checkpoint"]["checkpoint_id"] == checkpoint_id
    missing = await api["viewer"].get(f"/threads/{thread_id}/state/not-a-checkpoint")
    assert missing.status_code == 404


async def test_edit_a_past_state_and_fork_a_run_from_it(api: Api) -> None:
    thread_id, history = await chain_thread(api)
    two = after_step(history, ["n1", "n2"])["checkpoint"]["checkpoint_id"]
    for role in ("operator", "approver"):  # state writes need admin
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await api.sdk(role).threads.update_state(thread_id, {"count": 100}, as_node="n2", checkpoint_id=two)
        assert caught.value.response.status_code == 403
    written = await api.sdk("admin").threads.update_state(thread_id, {"count": 100}, as_node="n2", checkpoint_id=two)
    forked = written["checkpoint"]["checkpoint_id"]
    assert forked and forked != two
    state = await api.sdk("viewer").threads.get_state(thread_id)
    assert state["values"] == {"count": 100, "steps": ["n1", "n2"]} and state["next"] == ["n3"]
    result = await api.sdk("operator").runs.wait(thread_id, "chain", input=None, checkpoint_id=forked)
    assert result == {"count": 103, "steps": ["n1", "n2", "n3", "n4", "n5"]}
    audit = (await api["viewer"].get(f"/threads/{thread_id}/audit")).json()["events"]
    assert any(e["kind"] == "state_edited" and e["who"] == "admin-1 (admin)" for e in audit)


async def test_copy_a_thread_with_its_checkpoints(api: Api) -> None:
    thread_id, history = await chain_thread(api)
    client = api.sdk("operator")
    copy = await client.threads.copy(thread_id)
    copy_id = copy["thread_id"]
    assert copy_id != thread_id and copy["metadata"]["graph_id"] == "chain"
    assert (await client.threads.get_state(copy_id))["values"] == (await client.threads.get_state(thread_id))["values"]
    copied = await client.threads.get_history(copy_id, limit=100)
    assert [s["values"] for s in copied] == [s["values"] for s in history]
    await client.runs.wait(copy_id, "chain", input={"count": 50})
    assert (await client.threads.get_state(copy_id))["values"]["count"] == 55
    assert (await client.threads.get_state(thread_id))["values"]["count"] == 5  # the original is untouched
    assert len(await client.threads.get_history(thread_id, limit=100)) == len(history)


async def test_info_reports_a_version_studio_can_gate_on(api: Api) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://rimas.test") as anon:
        assert (await anon.get("/info")).status_code == 401  # with auth on only /ok answers without a key
    response = await api["viewer"].get("/info")  # the UIs send their key with this probe
    assert response.status_code == 200
    info = response.json()
    assert re.fullmatch(r"\d+\.\d+\.\d+([.+-].*)?", info["version"]), info
    assert info["flags"]["assistants"] is True


@asynccontextmanager
async def browser(settings: Any, base_url: str = "http://127.0.0.1:8123") -> AsyncIterator[httpx.AsyncClient]:
    """The app with these settings, reached from loopback like a browser on this machine, without a key."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50123))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


def preflight(origin: str, headers: str = "authorization,content-type,x-api-key") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers,
        "Access-Control-Request-Private-Network": "true",
    }


async def test_cors_for_the_studio_origin(
    settings_factory: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    settings = settings_factory(
        database_url=database_url,
        seed_on_start=False,
        api_keys=API_KEYS,
        langgraph_config=write_langgraph_json(tmp_path),
        cors_origins=f"{STUDIO},http://x.test",
    )
    async with browser(settings) as client:
        response = await client.options("/threads/search", headers=preflight(STUDIO))
        assert response.status_code == 200, response.text  # a preflight carries no key
        assert response.headers["access-control-allow-origin"] == STUDIO
        assert response.headers["access-control-allow-private-network"] == "true"
        allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "x-api-key"} <= allowed
        assert "POST" in response.headers["access-control-allow-methods"]
        found = await client.post("/threads/search", json={}, headers={"Origin": STUDIO, "x-api-key": KEYS["viewer"]})
        assert found.status_code == 200
        assert found.headers["access-control-allow-origin"] == STUDIO
        exposed = {h.strip().lower() for h in found.headers["access-control-expose-headers"].split(",")}
        assert {"content-location", "location"} <= exposed
        refused = await client.options("/threads/search", headers=preflight("https://evil.example"))
        assert "access-control-allow-origin" not in refused.headers
        local = await client.options("/threads/search", headers=preflight("http://localhost:3000"))
        assert "access-control-allow-origin" not in local.headers  # with auth on, loopback is not implied


async def test_cors_for_loopback_origins_when_auth_is_off(
    settings_factory: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    settings = settings_factory(
        database_url=database_url, seed_on_start=False, langgraph_config=write_langgraph_json(tmp_path)
    )
    async with browser(settings) as client:
        for origin in ("http://localhost:3000", "http://127.0.0.1:5173"):
            response = await client.options("/threads/search", headers=preflight(origin, "content-type"))
            assert response.status_code == 200, response.text
            assert response.headers["access-control-allow-origin"] == origin
            assert response.headers["access-control-allow-private-network"] == "true"
        refused = await client.options("/threads/search", headers=preflight("https://evil.example", "content-type"))
        assert "access-control-allow-origin" not in refused.headers
