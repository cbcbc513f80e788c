"""Behaviours LangGraph clients rely on, as the LangGraph Server API test suite checks them: stateless runs,
static interrupts, task paths, checkpoint events, subgraph state, supersteps, free configurable keys, the
``config_schema`` shape, and a thread a queued run waits on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEYS, GRAPHS, Api, serving, thread_gone, write_langgraph_json

from server.runtime import manager as run_manager


@pytest.fixture
async def api(settings_factory: Callable[..., Any], database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    graphs = {name: f"{GRAPHS / name}.py:graph" for name in ("chain", "configured", "nested_wait", "chat")}
    settings = settings_factory(database_url=database_url, seed_on_start=False, train_models_on_start=False,
                                api_keys=API_KEYS, langgraph_config=write_langgraph_json(tmp_path, graphs))  # fmt: skip
    async with serving(settings) as served:
        yield served


async def test_stateless_runs_use_a_temporary_thread(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_manager, "TEMPORARY_THREAD_GRACE_SECONDS", 0.1)
    operator = api.sdk("operator")
    created: list[Any] = []
    values = await operator.runs.wait(None, "chain", input={"count": 0}, on_run_created=created.append)
    assert values["count"] == 5 and len(created) == 1
    assert await thread_gone(operator, created[0]["thread_id"])  # deleted after the run (on_completion: delete)

    parts = [p async for p in operator.runs.stream(None, "chain", input={"count": 1}, stream_mode="updates")]
    assert [p.event for p in parts] == ["metadata"] + ["updates"] * 5
    assert await thread_gone(operator, parts[0].data["thread_id"])

    kept = await operator.runs.create(None, "chain", input={"count": 2}, on_completion="keep")
    await operator.runs.join(kept["thread_id"], kept["run_id"])
    await asyncio.sleep(0.3)
    assert (await operator.threads.get_state(kept["thread_id"]))["values"]["count"] == 7
    refused = await api["viewer"].post("/runs/wait", json={"assistant_id": "chain"})
    assert refused.status_code == 403
    # a new thread has no checkpoint to start from, and a delay is a number of seconds
    for body, field in (({"checkpoint_id": "1f0c7f6e-0000-6000-8000-000000000000"}, "checkpoint_id"),
                        ({"checkpoint": {"checkpoint_id": "x"}}, "checkpoint"),
                        ({"after_seconds": False}, "after_seconds"), ({"after_seconds": "5"}, "after_seconds")):
        response = await api["operator"].post("/runs/wait", json={"assistant_id": "chain", **body})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["field"] == field, response.text


async def test_a_static_interrupt_leaves_the_thread_interrupted(api: Api) -> None:
    operator, admin = api.sdk("operator"), api.sdk("admin")
    thread = (await operator.threads.create())["thread_id"]
    await operator.runs.wait(thread, "chain", input={"count": 0}, interrupt_before=["n3"])
    assert (await operator.threads.get(thread))["status"] == "interrupted"
    assert (await operator.runs.list(thread))[0]["status"] == "interrupted"
    state = await operator.threads.get_state(thread)
    assert state["next"] == ["n3"]
    assert [(t["name"], t["path"], t["interrupts"]) for t in state["tasks"]] == [("n3", ["__pregel_pull", "n3"], [])]
    await admin.threads.update_state(thread, {"count": 100})  # still stopped before n3
    assert (await operator.threads.get(thread))["status"] == "interrupted"
    assert (await operator.runs.wait(thread, "chain", input=None))["count"] == 103
    assert (await operator.threads.get(thread))["status"] == "idle"
    # a node the graph lacks stops nothing (as in LangGraph), it is not refused
    other = (await operator.threads.create())["thread_id"]
    assert (await operator.runs.wait(other, "chain", input={"count": 0}, interrupt_before=["n9"]))["count"] == 5


async def test_checkpoint_events_name_checkpoints_as_the_history_does(api: Api) -> None:
    operator = api.sdk("operator")
    thread = (await operator.threads.create())["thread_id"]

    async def checkpoints(**kwargs: Any) -> list[dict[str, Any]]:
        parts = [p async for p in operator.runs.stream(thread, "chain", stream_mode="debug", **kwargs)]
        assert "end" not in {p.event for p in parts}
        return [p.data["payload"] for p in parts if p.event == "debug" and p.data["type"] == "checkpoint"]

    first = await checkpoints(input={"count": 0}, interrupt_before=["n3"])
    assert all("config" not in c and "parent_config" not in c for c in first)
    history = list(reversed(await operator.threads.get_history(thread, limit=20)))
    keys = ("checkpoint", "parent_checkpoint")
    assert [{k: c[k] for k in keys} for c in first] == [{k: h[k] for k in keys} for h in history]
    # a run resuming from a checkpoint announces it first, so the events chain without a gap
    resumed = await checkpoints(input=None, checkpoint=history[-1]["checkpoint"])
    assert resumed[0]["checkpoint"] == history[-1]["checkpoint"]
    history = list(reversed(await operator.threads.get_history(thread, limit=20)))
    assert [c["checkpoint"] for c in first + resumed[1:]] == [h["checkpoint"] for h in history]


async def test_a_subgraphs_state_is_read_and_written_through_its_namespace(api: Api) -> None:
    operator, admin = api.sdk("operator"), api.sdk("admin")
    thread = (await operator.threads.create())["thread_id"]
    await operator.runs.wait(thread, "nested_wait", input={})
    assert (await operator.threads.get(thread))["status"] == "interrupted"
    task = (await operator.threads.get_state(thread))["tasks"][0]
    assert task["name"] == "inner" and task["path"] == ["__pregel_pull", "inner"]
    inner = task["checkpoint"]
    assert set(inner) == {"thread_id", "checkpoint_ns"} and inner["checkpoint_ns"].startswith("inner:")
    await admin.threads.update_state(thread, {"city": "Oslo"}, checkpoint=inner)
    inner_state = (await api["viewer"].post(f"/threads/{thread}/state/checkpoint",
                                            json={"checkpoint": inner})).json()  # fmt: skip
    assert inner_state["values"]["city"] == "Oslo" and inner_state["next"] == ["act"]
    assert (await operator.runs.wait(thread, "nested_wait", input=None))["answer"] == "sunny in Oslo"
    bad = await api["viewer"].post(f"/threads/{thread}/state/checkpoint",
                                   json={"checkpoint": {"checkpoint_ns": "inner"}})  # fmt: skip
    assert bad.status_code == 422 and "checkpoint.checkpoint_ns" in bad.json()["detail"]
    run_from_sub = await api["operator"].post(f"/threads/{thread}/runs/wait",
                                              json={"assistant_id": "nested_wait", "checkpoint": inner})  # fmt: skip
    assert run_from_sub.status_code == 422 and "checkpoint.checkpoint_ns" in run_from_sub.json()["detail"]
    subgraphs = (await api["viewer"].get("/assistants/nested_wait/subgraphs")).json()
    assert subgraphs["inner"]["state"] == subgraphs["inner"]["state_schema"]  # also under LangGraph.js's names
    assert set(subgraphs["inner"]["state"]["properties"]) == {"city", "answer"}


async def test_supersteps_write_a_new_threads_history(api: Api) -> None:
    operator, admin = api.sdk("operator"), api.sdk("admin")
    source = (await operator.threads.create())["thread_id"]
    updates = [p.data async for p in operator.runs.stream(source, "chain", input={"count": 0},
                                                          stream_mode="updates") if p.event == "updates"]  # fmt: skip
    history = await operator.threads.get_history(source, limit=20)
    supersteps = [
        {"updates": [{"as_node": "__input__", "values": history[-2]["values"]}]},
        {"updates": [{"as_node": "__start__", "values": history[-2]["values"]}]},
        *({"updates": [{"as_node": node, "values": values} for node, values in update.items()]} for update in updates),
    ]
    clone = await admin.threads.create(graph_id="chain", supersteps=supersteps)
    copied = await operator.threads.get_history(clone["thread_id"], limit=20)
    assert [(h["next"], h["values"]) for h in copied] == [(h["next"], h["values"]) for h in history]
    assert {h["metadata"].get("actor_id") for h in copied} == {"admin-1"}  # every checkpoint attributed
    body = {"metadata": {"graph_id": "chain"}, "supersteps": supersteps}
    assert (await api["operator"].post("/threads", json=body)).status_code == 403
    missing = await api["admin"].post("/threads", json={"supersteps": supersteps})
    assert missing.status_code == 422 and "metadata.graph_id" in missing.json()["detail"]
    bad_node = {**body, "supersteps": [{"updates": [{"as_node": "n9", "values": {}}]}]}
    refused = await api["admin"].post("/threads", json={**bad_node, "thread_id": "never-made"})
    assert refused.status_code == 409 and "supersteps[0].updates[0].as_node" in refused.json()["detail"]
    assert (await api["viewer"].get("/threads/never-made")).status_code == 404  # nothing half-made


async def test_configurable_keys_are_free_but_the_runtimes_own_are_refused(api: Api) -> None:
    operator = api["operator"]
    thread = (await operator.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "chain", "input": {"count": 0}, "config": {"configurable": {"user_id": "123"},
            "metadata": {"origin": "remote graph"}}}  # fmt: skip
    ran = await operator.post(f"/threads/{thread}/runs/wait", json=body)
    assert ran.status_code == 200, ran.text
    run = (await operator.get(f"/threads/{thread}/runs")).json()[0]
    assert run["metadata"]["origin"] == "remote graph"  # config.metadata joins the run's metadata
    for key in ("__pregel_resume_map", "checkpoint_map", "langgraph_auth_user", "run_id", "assistant_id"):
        body = {"assistant_id": "chain", "config": {"configurable": {key: "x"}}}
        refused = await operator.post(f"/threads/{thread}/runs/wait", json=body)
        assert refused.status_code == 422 and f"config.configurable.{key}" in refused.json()["detail"], key


async def test_config_schema_is_the_configurable_schema_itself(api: Api) -> None:
    schemas = (await api["viewer"].get("/assistants/configured/schemas")).json()
    assert schemas["config_schema"]["type"] == "object" and "configurable" not in schemas["config_schema"].get(
        "properties", {}
    )
    assert set(schemas["config_schema"]["properties"]) == set(schemas["context_schema"]["properties"])


async def test_state_cannot_be_written_under_a_queued_run(api: Api) -> None:
    operator = api.sdk("operator")
    thread = (await operator.threads.create())["thread_id"]
    run = await operator.runs.create(thread, "chain", input={"count": 0}, after_seconds=30)
    refused = await api["admin"].post(f"/threads/{thread}/state", json={"values": {"count": 9}, "as_node": "n1"})
    assert refused.status_code == 409 and run["run_id"] in refused.json()["detail"]
    await operator.runs.cancel(thread, run["run_id"], wait=True)
    assert (await api["admin"].post(f"/threads/{thread}/state",
                                    json={"values": {"count": 9}, "as_node": "n1"})).status_code == 200  # fmt: skip


async def test_a_copied_threads_checkpoints_name_the_copy(api: Api) -> None:
    operator = api.sdk("operator")
    thread = (await operator.threads.create())["thread_id"]
    await operator.runs.wait(thread, "chain", input={"count": 0})
    copy = (await operator.threads.copy(thread))["thread_id"]
    original, copied = await operator.threads.get_state(thread), await operator.threads.get_state(copy)
    assert copied["metadata"] == {**original["metadata"], "thread_id": copy}
    assert copied["checkpoint"] == {**original["checkpoint"], "thread_id": copy}


async def test_a_delete_body_passes_the_same_guard_as_any_body(api: Api) -> None:
    """``DELETE /store/items`` takes a JSON body: NULs, bad UTF-8 and size limits are refused there too."""
    nul = await api["operator"].request("DELETE", "/store/items", json={"namespace": ["a"], "key": "k", "x\u0000": 1})
    assert nul.status_code == 422 and "x" in nul.json()["detail"]
    broken = await api["operator"].request("DELETE", "/store/items", content=b'{"key": "\xff"}',
                                           headers={"content-type": "application/json"})  # fmt: skip
    assert broken.status_code == 422
