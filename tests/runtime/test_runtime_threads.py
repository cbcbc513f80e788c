"""Assistants and threads through the langgraph-sdk client: search, get, graph, schemas, CRUD, paging, auth."""

from __future__ import annotations

import pytest
from conftest import Api
from langgraph_sdk.errors import ConflictError, NotFoundError, PermissionDeniedError


async def test_assistants_are_the_graphs_of_langgraph_json(api: Api) -> None:
    client = api.sdk("viewer")
    found = await client.assistants.search()
    assert [a["assistant_id"] for a in found] == [
        "approval", "chain", "chat", "chat_hitl", "hitl_agent", "slow_chat", "ledger"
    ]  # fmt: skip
    assert [a["assistant_id"] for a in await client.assistants.search(graph_id="chat")] == ["chat"]
    page = await client.assistants.search(limit=2, offset=1, response_format="object")
    assert [a["assistant_id"] for a in page["assistants"]] == ["chain", "chat"]
    assistant = await client.assistants.get("chain")
    assert assistant["graph_id"] == "chain" and assistant["version"] == 1
    graph = await client.assistants.get_graph("chain")
    assert ("n4", "n5") in {(e["source"], e["target"]) for e in graph["edges"]}
    schemas = await client.assistants.get_schemas("approval")
    assert schemas["context_schema"]["properties"].keys() == {"principal"}
    assert "amount" in schemas["input_schema"]["properties"]
    with pytest.raises(NotFoundError, match="Assistant nope not found"):
        await client.assistants.get("nope")


async def test_thread_lifecycle(api: Api) -> None:
    operator, viewer = api.sdk("operator"), api.sdk("viewer")
    thread = await operator.threads.create(thread_id="order-1001", metadata={"store": 3, "kind": "refund"})
    assert thread["thread_id"] == "order-1001"
    assert thread["status"] == "idle" and thread["metadata"] == {"store": 3, "kind": "refund"}
    with pytest.raises(ConflictError, match="already exists"):
        await operator.threads.create(thread_id="order-1001")
    again = await operator.threads.create(thread_id="order-1001", if_exists="do_nothing", metadata={"x": 1})
    assert again["metadata"] == {"store": 3, "kind": "refund"}
    fetched = await viewer.threads.get("order-1001")
    assert fetched["status"] == "idle" and fetched["values"] is None
    patched = await operator.threads.update("order-1001", metadata={"priority": "high"})
    assert patched["metadata"] == {"store": 3, "kind": "refund", "priority": "high"}
    with pytest.raises(PermissionDeniedError, match="needs the operator role"):
        await viewer.threads.create()
    with pytest.raises(PermissionDeniedError, match="needs the admin role"):  # its checkpoints are the audit trail
        await operator.threads.delete("order-1001")
    await api.sdk("admin").threads.delete("order-1001")
    with pytest.raises(NotFoundError):
        await viewer.threads.get("order-1001")


async def test_search_by_metadata_and_status_with_paging(api: Api) -> None:
    client = api.sdk("operator")
    for store_id in range(5):
        await client.threads.create(thread_id=f"s-{store_id}", metadata={"store": store_id % 2, "team": "ops"})
    await client.runs.wait("s-4", "chain", input={"count": 0})
    ops = await client.threads.search(metadata={"team": "ops"}, limit=10, sort_by="thread_id", sort_order="asc")
    assert [t["thread_id"] for t in ops] == ["s-0", "s-1", "s-2", "s-3", "s-4"]
    even = await client.threads.search(metadata={"store": 0}, sort_by="thread_id", sort_order="asc")
    assert [t["thread_id"] for t in even] == ["s-0", "s-2", "s-4"]
    assert even[2]["values"]["count"] == 5  # values come from the checkpoint
    first = await client.threads.search(
        metadata={"team": "ops"}, limit=2, offset=0, sort_by="thread_id", sort_order="asc"
    )
    second = await client.threads.search(
        metadata={"team": "ops"}, limit=2, offset=2, sort_by="thread_id", sort_order="asc"
    )
    assert [t["thread_id"] for t in first + second] == ["s-0", "s-1", "s-2", "s-3"]
    assert await client.threads.count(metadata={"team": "ops"}) == 5
    assert await client.threads.count(metadata={"team": "ops"}, status="idle") == 5
    assert await client.threads.count(status="busy") == 0


async def test_bad_input_names_the_field(api: Api) -> None:
    response = await api["operator"].post("/threads", json={"thread_id": "has space"})
    assert response.status_code == 422
    assert "thread_id" in response.json()["error"]["message"]
    response = await api["viewer"].post("/threads/search", json={"status": "sleeping"})
    assert response.status_code == 422
    assert "status" in response.json()["detail"]
    response = await api["operator"].post("/threads", json={"ttl": {"ttl": 5}})
    assert response.status_code == 422 and "ttl" in response.json()["detail"]


async def test_auth_is_required_when_keys_are_configured(api: Api) -> None:
    anonymous = api["viewer"].build_request("GET", "/threads/x")
    anonymous.headers.pop("x-api-key")
    response = await api["viewer"].send(anonymous)
    assert response.status_code == 401
