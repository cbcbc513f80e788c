"""Agent Chat UI against the server: the calls its ``useStream`` hook makes, in its order, with its options.

What the UI does (agent-chat-ui with @langchain/langgraph-sdk 1.8.x): ``GET /info``; ``POST /threads/search``
``{metadata: {graph_id}, limit: 100}`` for the thread list (previewing ``values.messages[0]``); ``POST
/threads`` then ``POST /threads/{id}/runs/stream`` with ``stream_mode`` values + messages-tuple + custom,
``stream_subgraphs``, ``stream_resumable`` (so ``on_disconnect: "continue"``) and, once the thread has history,
``checkpoint`` = the head's checkpoint without ``thread_id``; ``POST /threads/{id}/history {limit: 10}`` after
every run. An approval card shows when the last ``values`` carries ``__interrupt__: [{id, value}]`` (else the
head's ``tasks[-1].interrupts[-1]``) whose value is a LangChain v1 ``HITLRequest``. The card resumes with
``input: {}`` plus ``command.resume = {decisions: [approve | edit {edited_action} | reject {message}]}`` (edited
argument values come back as strings) and "Mark as resolved" sends ``command: {goto: "__end__"}``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from conftest import Api

GRAPH = "chat_hitl"
ASK = "refund 120.00 on order A-17"
PROPOSAL = "Order A-17 arrived late 2 times, so I propose a refund of 120.00 USD."
UI_OPTIONS: dict[str, Any] = {
    "stream_mode": ["values", "messages-tuple", "custom"],
    "stream_subgraphs": True,
    "stream_resumable": True,
    "on_disconnect": "continue",
}


def human(text: str) -> dict[str, Any]:
    """A message as the UI builds it: its own id, content as text blocks."""
    return {"id": str(uuid.uuid4()), "type": "human", "content": [{"type": "text", "text": text}]}


def is_hitl_request(interrupt: Any) -> bool:
    """The UI's ``isAgentInboxInterruptSchema``: an approval card, not the generic JSON view."""
    value = interrupt.get("value") if isinstance(interrupt, dict) else None
    if not isinstance(value, dict):
        return False
    requests, configs = value.get("action_requests"), value.get("review_configs")
    if not isinstance(requests, list) or not requests or not isinstance(configs, list) or not configs:
        return False
    return all(
        isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("args"), dict) for r in requests
    ) and all(
        isinstance(c, dict) and isinstance(c.get("action_name"), str) and isinstance(c.get("allowed_decisions"), list)
        for c in configs
    )


async def head_checkpoint(client: Any, thread_id: str) -> dict[str, Any] | None:
    """What the UI forks from: the newest of the last 10 checkpoints, without ``thread_id``."""
    history = await client.threads.get_history(thread_id, limit=10)
    if not history:
        return None
    checkpoint = dict(history[0]["checkpoint"])
    checkpoint.pop("thread_id", None)
    return checkpoint


async def submit(
    client: Any, thread_id: str, values: dict[str, Any], command: dict[str, Any] | None = None
) -> list[Any]:
    """``stream.submit(values, {command})`` of the UI: history, then a resumable stream from the head."""
    checkpoint = await head_checkpoint(client, thread_id)
    stream = client.runs.stream(thread_id, GRAPH, input=values, command=command, checkpoint=checkpoint, **UI_OPTIONS)
    parts = [part async for part in stream]
    await client.threads.get_history(thread_id, limit=10)  # the UI refetches after every run
    return parts


async def start_chat(api: Api, text: str = ASK) -> tuple[str, list[Any]]:
    client = api.sdk("operator")
    thread = await client.threads.create()
    parts = await submit(client, thread["thread_id"], {"messages": [human(text)]})
    return str(thread["thread_id"]), parts


def last_values(parts: list[Any]) -> dict[str, Any]:
    values = [p.data for p in parts if p.event == "values"]
    assert values, [p.event for p in parts]
    return dict(values[-1])


def no_errors(parts: list[Any]) -> None:
    assert not [p.data for p in parts if p.event == "error"]


async def resume(api: Api, role: str, thread_id: str, resume_value: Any) -> dict[str, Any]:
    parts = await submit(api.sdk(role), thread_id, {}, {"resume": resume_value})
    no_errors(parts)
    return last_values(parts)


async def test_a_chat_streams_tokens_and_shows_the_approval_card(api: Api) -> None:
    info = await api["operator"].get("/info")
    assert info.status_code == 200 and info.json()["version"]
    client = api.sdk("operator")
    thread_id, parts = await start_chat(api)
    assert parts[0].event == "metadata"
    assert parts[0].data["run_id"] and "attempt" in parts[0].data
    no_errors(parts)
    tokens = [p.data for p in parts if p.event == "messages"]
    assert tokens and all(isinstance(t, list) and len(t) == 2 for t in tokens)
    chunks = [chunk for chunk, metadata in tokens if metadata.get("langgraph_node") == "answer"]
    assert len(chunks) > 5  # token by token
    assert {c["type"] for c in chunks} <= {"AIMessageChunk", "ai"}
    assert "".join(c["content"] for c in chunks) == PROPOSAL
    assert len({c["id"] for c in chunks}) == 1
    assert [p.data for p in parts if p.event == "custom"] == [{"status": "checking order A-17"}]
    assert [p.data for p in parts if p.event.startswith("custom|lookup:")] == [{"status": "looking up the order"}]
    nested = [p for p in parts if p.event.startswith("values|lookup:")]
    assert nested and nested[-1].data["order"] == {"order_id": "A-17", "amount": 120.0, "late_deliveries": 2}
    values = last_values(parts)
    assert [m["type"] for m in values["messages"]] == ["human", "ai"]
    assert values["messages"][1]["content"] == PROPOSAL
    interrupts = values["__interrupt__"]
    assert len(interrupts) == 1 and interrupts[0]["id"] and is_hitl_request(interrupts[0])
    request = interrupts[0]["value"]
    action = request["action_requests"][0]
    assert action["name"] == "issue_refund" and action["args"] == {"order_id": "A-17", "amount": 120.0}
    assert action["description"] == "Refund 120.00 on order A-17"
    assert request["review_configs"] == [
        {"action_name": "issue_refund", "allowed_decisions": ["approve", "edit", "reject"]}
    ]
    # the thread list: found by graph_id, previewing the first message
    listed = {t["thread_id"]: t for t in await client.threads.search(metadata={"graph_id": GRAPH}, limit=100)}
    assert thread_id in listed, "searching threads by graph_id misses the thread the run stamped"
    mine = listed[thread_id]
    assert mine["status"] == "interrupted"
    assert mine["metadata"]["graph_id"] == GRAPH and mine["metadata"]["assistant_id"] == GRAPH
    assert mine["values"]["messages"][0]["content"] == [{"type": "text", "text": ASK}]
    # after a reload the card comes from history: the head's last task's last interrupt
    head = (await client.threads.get_history(thread_id, limit=10))[0]
    assert head["next"] == ["review"]
    restored = head["tasks"][-1]["interrupts"][-1]
    assert restored["id"] == interrupts[0]["id"] and is_hitl_request(restored)
    assert restored["value"]["action_requests"][0]["args"] == action["args"]


async def test_the_stream_request_exactly_as_the_browser_sends_it(api: Api) -> None:
    thread = await api.sdk("operator").threads.create()
    thread_id = thread["thread_id"]
    body = {"input": {"messages": [human(ASK)]}, "assistant_id": GRAPH, **UI_OPTIONS}
    response = await api["operator"].post(f"/threads/{thread_id}/runs/stream", content=json.dumps(body),
                                          headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 200, response.text
    location = response.headers["content-location"]  # the SDK's onRunCreated reads the run id here
    assert location.startswith(f"/threads/{thread_id}/runs/")
    assert response.headers["location"] == f"{location}/stream"
    names = [line.partition(": ")[2] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names[0] == "metadata" and "messages" in names and "values" in names
    assert any(name.startswith("values|lookup:") for name in names)


async def test_approve_from_the_card(api: Api) -> None:
    thread_id, _ = await start_chat(api)
    values = await resume(api, "approver", thread_id, {"decisions": [{"type": "approve"}]})
    assert "__interrupt__" not in values
    assert values["messages"][-1]["content"] == "Refunded 120.00 on order A-17 (approved by approver-1)."
    decision = values["decision"]
    assert decision["type"] == "approve" and decision["actor"] == {"id": "approver-1", "role": "approver"}
    assert decision["decided_at"]
    thread = await api.sdk("viewer").threads.get(thread_id)
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    head = (await api.sdk("viewer").threads.get_history(thread_id, limit=10))[0]
    assert head["next"] == [] and not any(task["interrupts"] for task in head["tasks"])


async def test_edit_and_reject_from_the_card(api: Api) -> None:
    edited_id, _ = await start_chat(api)
    edit = {"type": "edit", "edited_action": {"name": "issue_refund", "args": {"order_id": "A-17", "amount": "80"}}}
    values = await resume(api, "approver", edited_id, {"decisions": [edit]})
    assert values["messages"][-1]["content"] == "Refunded 80.00 on order A-17 (edited by approver-1)."
    decision = values["decision"]
    assert decision["type"] == "edit" and decision["edited_action"]["name"] == "issue_refund"
    assert float(decision["edited_action"]["args"]["amount"]) == 80.0
    rejected_id, _ = await start_chat(api)
    reject = {"type": "reject", "message": "customer already got store credit"}
    values = await resume(api, "approver", rejected_id, {"decisions": [reject]})
    assert values["messages"][-1]["content"] == (
        "Refund on order A-17 not issued: customer already got store credit (rejected by approver-1)."
    )
    assert values["decision"]["message"] == "customer already got store credit"
    assert values["decision"]["actor"]["id"] == "approver-1"


async def test_mark_as_resolved_ends_the_thread_without_deciding(api: Api) -> None:
    thread_id, _ = await start_chat(api)
    parts = await submit(api.sdk("approver"), thread_id, {}, {"goto": "__end__"})
    no_errors(parts)
    viewer = api.sdk("viewer")
    thread = await viewer.threads.get(thread_id)
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    state = await viewer.threads.get_state(thread_id)
    assert state["next"] == [] and not any(task["interrupts"] for task in state["tasks"])
    assert [m["content"] for m in state["values"]["messages"]][-1] == PROPOSAL  # nothing was refunded
    assert "decision" not in state["values"]
    assert (await api["viewer"].get("/approvals", params={"thread_id": thread_id})).json()["total"] == 0
    audit = (await api["viewer"].get(f"/threads/{thread_id}/audit")).json()["events"]
    asked = next(i for i, e in enumerate(audit) if e["kind"] == "approval_requested")
    assert any(e["who"] == "approver-1 (approver)" for e in audit[asked + 1 :])


@pytest.mark.parametrize(
    "command",
    [{"resume": {"decisions": [{"type": "approve"}]}}, {"goto": "__end__"}],
    ids=["approve", "mark-resolved"],
)
async def test_an_operator_cannot_decide_from_the_card(api: Api, command: dict[str, Any]) -> None:
    thread_id, _ = await start_chat(api)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await submit(api.sdk("operator"), thread_id, {}, command)
    assert caught.value.response.status_code == 403
    thread = await api.sdk("viewer").threads.get(thread_id)
    assert thread["status"] == "interrupted" and thread["interrupts"]


async def test_amount_authority_applies_to_the_card(api: Api) -> None:
    thread_id, _ = await start_chat(api, "please refund 250.00 on order C-3")
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await submit(api.sdk("approver"), thread_id, {}, {"resume": {"decisions": [{"type": "approve"}]}})
    assert caught.value.response.status_code == 403
    assert "exceeds the approver authority of 200.00" in caught.value.response.text
    assert (await api.sdk("viewer").threads.get(thread_id))["status"] == "interrupted"
    values = await resume(api, "admin", thread_id, {"decisions": [{"type": "approve"}]})
    assert values["messages"][-1]["content"] == "Refunded 250.00 on order C-3 (approved by admin-1)."


@pytest.mark.parametrize(
    ("resume_value", "field"),
    [
        ({"decisions": [{"type": "edit"}]}, "decisions.0.edited_action"),
        (
            {"decisions": [{"type": "edit", "edited_action": {"name": "cancel_order", "args": {"order_id": "A-17"}}}]},
            "decisions.0.edited_action.name",
        ),
        ({"decisions": [{"type": "respond", "message": "done"}]}, "decisions.0.type"),
        ({"decisions": [{"type": "approve"}, {"type": "approve"}]}, "decisions"),
    ],
    ids=["edit-without-action", "edit-renames-the-tool", "decision-not-allowed", "one-decision-too-many"],
)
async def test_a_malformed_card_decision_is_422_naming_the_field(api: Api, resume_value: Any, field: str) -> None:
    thread_id, _ = await start_chat(api)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await submit(api.sdk("approver"), thread_id, {}, {"resume": resume_value})
    assert caught.value.response.status_code == 422
    assert field in caught.value.response.json()["detail"]
    assert (await api.sdk("viewer").threads.get(thread_id))["status"] == "interrupted"
