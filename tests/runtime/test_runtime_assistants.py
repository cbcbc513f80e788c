"""Assistants: system assistants from langgraph.json (with LANGGRAPH_CONFIG defaults), assistants created through
the API (versions, pinning, deletion with their threads), runs merging an assistant's config and context under
their own, graphs built per config, and the store every graph is compiled with."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEYS, GRAPHS, Api, serving, write_langgraph_json
from langgraph_sdk.errors import NotFoundError

DEFAULTS = {"configured": {"configurable": {"node": "from_env"}, "context": {"tone": "plain"}}}


@pytest.fixture
async def api(
    settings_factory: Callable[..., Any], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    monkeypatch.setenv("LANGGRAPH_CONFIG", json.dumps(DEFAULTS))
    graphs = {name: f"{GRAPHS / name}.py:graph" for name in ("chain", "configured")}
    settings = settings_factory(database_url=database_url, seed_on_start=False, train_models_on_start=False,
                                api_keys=API_KEYS, langgraph_config=write_langgraph_json(tmp_path, graphs))  # fmt: skip
    async with serving(settings) as served:
        yield served


def _stable(assistant: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in assistant.items() if k not in ("assistant_id", "created_at", "updated_at")}


async def test_system_assistants_carry_the_deployment_defaults_and_cannot_change(api: Api) -> None:
    system = (await api["viewer"].post("/assistants/search", json={"metadata": {"created_by": "system"}})).json()
    by_id = {a["assistant_id"]: a for a in system}
    assert set(by_id) == {"chain", "configured"}
    assert _stable(by_id["configured"]) == {
        "graph_id": "configured", "name": "configured", "description": by_id["configured"]["description"],
        "config": {"configurable": {"node": "from_env"}}, "context": {"tone": "plain"},
        "metadata": {"created_by": "system", "source": f"{GRAPHS / 'configured.py'}:graph"}, "version": 1,
    }  # fmt: skip
    admin = api["admin"]
    assert (await admin.patch("/assistants/chain", json={"name": "x"})).status_code == 409
    refused = await admin.delete("/assistants/chain")
    assert refused.status_code == 409 and "langgraph.json" in refused.json()["detail"]
    assert [v["version"] for v in (await admin.post("/assistants/chain/versions", json={})).json()] == [1]
    # a run on the graph id uses its system assistant: the env's config builds the node, its context is merged
    values = await api.sdk("operator").runs.wait(None, "configured", input={"word": "hi"}, context={"user": "u1"})
    assert values == {"word": "hi", "nodes": ["from_env"], "tone": "plain", "remembered": None}


async def test_assistant_lifecycle_versions_and_pinning(api: Api) -> None:
    admin = api.sdk("admin")
    created = await admin.assistants.create("configured", config={"configurable": {"node": "one"}},
                                            context={"tone": "formal"}, metadata={"team": "ops"}, name="Formal",
                                            description="speaks formally")  # fmt: skip
    assert _stable(created) == {
        "graph_id": "configured", "name": "Formal", "description": "speaks formally",
        "config": {"configurable": {"node": "one"}}, "context": {"tone": "formal"}, "metadata": {"team": "ops"},
        "version": 1,
    }  # fmt: skip
    aid = created["assistant_id"]
    again = await admin.assistants.create("configured", assistant_id=aid, if_exists="do_nothing", name="other")
    assert again == created
    duplicate = await api["admin"].post("/assistants", json={"graph_id": "configured", "assistant_id": aid})
    assert duplicate.status_code == 409

    updated = await admin.assistants.update(aid, context={"tone": "plain"}, metadata={"reviewed": True})
    assert (updated["version"], updated["context"], updated["metadata"]) == (2, {"tone": "plain"},
                                                                             {"team": "ops", "reviewed": True})
    assert updated["config"] == created["config"] and updated["name"] == "Formal"  # kept
    versions = await admin.assistants.get_versions(aid)
    assert [(v["version"], v["context"]) for v in versions] == [(2, {"tone": "plain"}), (1, {"tone": "formal"})]
    assert [v["version"] for v in await admin.assistants.get_versions(aid, metadata={"reviewed": True})] == [2]
    assert [v["version"] for v in await admin.assistants.get_versions(aid, limit=1, offset=1)] == [1]

    operator = api.sdk("operator")
    assert (await operator.runs.wait(None, aid, input={"word": "a"}))["tone"] == "plain"
    pinned = await admin.assistants.set_latest(aid, 1)
    assert (pinned["version"], pinned["context"]) == (1, {"tone": "formal"})
    assert (await operator.runs.wait(None, aid, input={"word": "a"}))["tone"] == "formal"
    assert (await admin.assistants.update(aid))["version"] == 3  # numbering goes on after a pin
    missing = await api["admin"].post(f"/assistants/{aid}/latest", json={"version": 9})
    assert missing.status_code == 404 and "no version 9" in missing.json()["detail"]

    await admin.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await admin.assistants.get(aid)
    assert (await api["admin"].post(f"/assistants/{aid}/versions", json={})).status_code == 404


async def test_a_run_merges_its_config_and_context_over_the_assistants(api: Api) -> None:
    created = await api.sdk("admin").assistants.create(
        "configured", config={"configurable": {"node": "assistant_node"}}, context={"tone": "formal"}
    )
    operator = api.sdk("operator")
    thread = await operator.threads.create()
    values = await operator.runs.wait(thread["thread_id"], created["assistant_id"], input={"word": "w1"},
                                      context={"user": "ann"})  # fmt: skip
    assert values == {"word": "w1", "nodes": ["assistant_node"], "tone": "formal", "remembered": None}
    run = (await operator.runs.list(thread["thread_id"]))[0]
    assert run["assistant_id"] == created["assistant_id"]
    # the run's own config and context win; the graph is built for that config
    values = await operator.runs.wait(thread["thread_id"], created["assistant_id"], input={"word": "w2"},
                                      config={"configurable": {"node": "run_node"}},
                                      context={"user": "ann", "tone": "plain"})  # fmt: skip
    assert values["nodes"][-1] == "run_node" and values["tone"] == "plain"
    # the store is the graph's memory: the second run read what the first one wrote
    assert values["remembered"] == "w1"
    item = (await api["viewer"].get("/store/items", params={"namespace": "memory.ann", "key": "last_word"})).json()
    assert item["value"] == {"word": "w2"}
    # the thread's state is written with the graph its last run was built with (a node of that config only)
    admin = api.sdk("admin")
    await admin.threads.update_state(thread["thread_id"], {"word": "edited"}, as_node="run_node")
    refused = await api["admin"].post(f"/threads/{thread['thread_id']}/state",
                                      json={"values": {"word": "x"}, "as_node": "assistant_node"})  # fmt: skip
    assert refused.status_code == 409 and "run_node" in refused.json()["detail"]


async def test_assistant_input_is_checked_and_roles_apply(api: Api) -> None:
    admin = api["admin"]
    cases = [
        ({"graph_id": "nope"}, "graph_id: 'nope' is not a graph"),
        ({"graph_id": "configured", "context": {"mood": "x"}}, "context.mood"),
        ({"graph_id": "configured", "context": {"tone": "loud"}}, "context.tone"),
        ({"graph_id": "chain", "config": {"configurable": {"__pregel_resume_map": {}}}}, "configurable.__pregel"),
        ({"graph_id": "chain", "config": {"configurable": {"thread_id": "t"}}}, "configurable.thread_id"),
        ({"graph_id": "chain", "assistant_id": "chain"}, "assistant_id"),
    ]
    for body, field in cases:
        response = await admin.post("/assistants", json=body)
        assert response.status_code == 422 and field in response.json()["detail"], (body, response.text)
    for role in ("viewer", "operator", "approver"):
        assert (await api[role].post("/assistants", json={"graph_id": "chain"})).status_code == 403
    created = (await admin.post("/assistants", json={"graph_id": "chain"})).json()
    for role in ("viewer", "operator", "approver"):
        assert (await api[role].patch(f"/assistants/{created['assistant_id']}", json={})).status_code == 403
        assert (await api[role].delete(f"/assistants/{created['assistant_id']}")).status_code == 403
    assert (await api["viewer"].get(f"/assistants/{created['assistant_id']}")).status_code == 200


async def test_a_misfit_with_a_stored_assistants_graph_is_a_conflict(api: Api) -> None:
    """A body naming a graph (a system assistant) that does not fit it is invalid (422); the same body on a
    created assistant is well-formed but does not fit the graph stored behind the id (409 ``graph_mismatch``)."""
    created = (await api["admin"].post("/assistants", json={"graph_id": "configured"})).json()["assistant_id"]
    misfits = [({"context": {"mood": "x"}}, "context.mood"), ({"context": {"tone": "loud"}}, "context.tone")]
    for body, field in misfits:
        system = await api["operator"].post("/runs/wait", json={"assistant_id": "configured", **body})
        assert system.status_code == 422 and system.json()["detail"].startswith(field), system.text
        stored = await api["operator"].post("/runs/wait", json={"assistant_id": created, **body})
        assert stored.status_code == 409 and stored.json()["detail"].startswith(field), stored.text
        assert stored.json()["error"]["code"] == "graph_mismatch"
        patched = await api["admin"].patch(f"/assistants/{created}", json=body)
        assert patched.status_code == 409 and patched.json()["detail"].startswith(field), patched.text
    # a graph that takes no context, switched to on PATCH, does not fit the context stored with the assistant
    styled = (await api["admin"].post("/assistants", json={"graph_id": "configured",
                                                           "context": {"tone": "plain"}})).json()  # fmt: skip
    switched = await api["admin"].patch(f"/assistants/{styled['assistant_id']}", json={"graph_id": "chain"})
    assert switched.status_code == 409 and "context" in switched.json()["detail"]
    assert (await api["viewer"].get(f"/assistants/{styled['assistant_id']}")).json()["version"] == 1  # unchanged


async def test_unknown_assistants_are_named_in_langgraphs_words(api: Api) -> None:
    operator = api["operator"]
    thread = (await operator.post("/threads", json={})).json()["thread_id"]
    for path in (f"/threads/{thread}/runs/wait", "/runs/wait", f"/threads/{thread}/runs/stream"):
        response = await operator.post(path, json={"assistant_id": "non-existent", "input": {}})
        assert response.status_code == 404
        assert response.json()["detail"].startswith('No assistant found for "non-existent".')
    assert (await operator.get("/assistants/7e1f0000-0000-4000-8000-000000000000")).status_code == 404


async def test_deleting_an_assistant_can_delete_its_threads(api: Api) -> None:
    created = await api.sdk("admin").assistants.create("chain")
    operator = api.sdk("operator")
    ran = await operator.threads.create()
    await operator.runs.wait(ran["thread_id"], created["assistant_id"], input={"count": 0})
    other = await operator.threads.create()
    await operator.runs.wait(other["thread_id"], "chain", input={"count": 0})
    await api.sdk("admin").assistants.delete(created["assistant_id"], delete_threads=True)
    with pytest.raises(NotFoundError):
        await operator.threads.get(ran["thread_id"])
    assert (await operator.threads.get(other["thread_id"]))["status"] == "idle"


async def test_search_pages_and_counts_system_and_created_assistants_together(api: Api) -> None:
    admin = api.sdk("admin")
    for earlier in await admin.assistants.search(limit=100):  # the module's database outlives each test
        if earlier["metadata"].get("created_by") != "system":
            await admin.assistants.delete(earlier["assistant_id"])
    made = [await admin.assistants.create("chain", name=f"chain copy {i}") for i in range(3)]
    viewer = api["viewer"]
    newest = (await viewer.post("/assistants/search", json={"limit": 2})).json()
    assert [a["assistant_id"] for a in newest] == [made[2]["assistant_id"], made[1]["assistant_id"]]
    page = await viewer.post("/assistants/search", json={"limit": 2, "offset": 2})
    assert page.headers["x-pagination-total"] == "5" and page.headers["x-pagination-next"] == "4"
    by_name = (await viewer.post("/assistants/search", json={"name": "COPY 1"})).json()
    assert [a["name"] for a in by_name] == ["chain copy 1"]
    assert (await viewer.post("/assistants/count", json={"graph_id": "chain"})).json() == 4
    ordered = (await viewer.post("/assistants/search", json={"sort_by": "name", "sort_order": "asc"})).json()
    assert [a["name"] for a in ordered] == ["chain", "chain copy 0", "chain copy 1", "chain copy 2", "configured"]
