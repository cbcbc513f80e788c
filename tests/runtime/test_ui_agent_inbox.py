"""Agent Inbox against the server: its thread list, how it reads an interrupt, and what each button sends.

What the inbox does (agent-inbox with @langchain/langgraph-sdk 1.9.x): ``POST /threads/search {offset, limit
<= 100, status?, metadata: {graph_id}}`` per tab; for an interrupted thread it reads ``thread.interrupts``
(``{task_id: [{id, value}]}``, first item of each) and, when the value is a LangChain v1 ``HITLRequest``,
shows ``action_requests[0]`` as ``{action: name, args: arguments}`` with ``config`` from
``review_configs[0].allowed_decisions`` (approve -> accept, edit -> edit, reject -> respond, never ignore);
otherwise it takes the value as a ``HumanInterrupt`` or a list of them. With no ``interrupts`` it falls back
to ``GET /threads/{id}/state`` ``tasks[-1].interrupts[-1].value``. Submit streams ``POST /threads/{id}/runs/
stream {assistant_id: graph_id, command: {resume: [HumanResponse]}, stream_mode: "events"}`` and follows
``on_chain_start`` events' ``metadata.langgraph_node``; accept sends the action request back as ``args``,
edit the action request with edited values as strings, respond the text. "Ignore" creates a run (no stream)
resuming with ``[{type: "ignore", args: null}]``; "Mark as resolved" is ``POST /threads/{id}/state {values:
null, as_node: "__end__"}``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import Api

GRAPH = "chat_hitl"
PROPOSAL_END = "so I propose a refund of 120.00 USD."
IMPROPER_SCHEMA = "__IMPROPER_SCHEMA__"
REFUND = {"action": "issue_refund", "args": {"order_id": "A-17", "amount": 120.0}}
RENDERED = {
    "action_request": REFUND,
    "config": {"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": False},
    "description": "Refund 120.00 on order A-17",
}


def _improper() -> dict[str, Any]:
    return {"action_request": {"action": IMPROPER_SCHEMA, "args": {}}, "config": {"allow_ignore": True}}


def _from_hitl(raw: Any) -> dict[str, Any] | None:
    """The inbox's ``normalizeInterrupt``: a v1 HITL request as the HumanInterrupt it renders."""
    if not isinstance(raw, dict):
        return None
    requests = raw.get("action_requests")
    if not isinstance(requests, list) or not requests:
        return None
    request = requests[0]
    configs = raw.get("review_configs") if isinstance(raw.get("review_configs"), list) else []
    first = configs[0] if configs and isinstance(configs[0], dict) else {}
    decisions = first.get("allowed_decisions") if isinstance(first.get("allowed_decisions"), list) else []
    args = request.get("arguments")  # sic: the inbox reads ``arguments``, not ``args``
    return {
        "action_request": {"action": request.get("name") or "", "args": {} if args is None else args},
        "config": {
            "allow_accept": "approve" in decisions,
            "allow_edit": "edit" in decisions,
            "allow_respond": "reject" in decisions,
            "allow_ignore": False,
        },
        "description": request.get("description"),
    }


def _human_interrupts(value: Any) -> list[dict[str, Any]] | None:
    """A value that already is a HumanInterrupt, or a list of them."""
    shape = {"action_request", "config"}
    if isinstance(value, dict) and shape <= set(value):
        return [value]
    if isinstance(value, list) and value and isinstance(value[0], dict) and shape <= set(value[0]):
        return value
    return None


def inbox_interrupts(thread: dict[str, Any]) -> list[dict[str, Any]] | None:
    """What the inbox's ``getInterruptFromThread`` makes of a thread from ``threads.search`` / ``threads.get``."""
    if not thread.get("interrupts"):
        return None
    found: list[dict[str, Any]] = []
    for items in thread["interrupts"].values():
        first = items[0] if isinstance(items, list) and items else None
        value = first.get("value") if isinstance(first, dict) else None
        rendered = _from_hitl(value)
        found.extend([rendered] if rendered else _human_interrupts(value) or [_improper()])
    return found


def invalid_schema(interrupts: list[dict[str, Any]] | None) -> bool:
    """The inbox's check: an interrupt it cannot render offers only "Ignore Thread"."""
    return not interrupts or any(i["action_request"]["action"] in ("", IMPROPER_SCHEMA) for i in interrupts)


async def interrupted(api: Api, text: str = "refund 120.00 on order A-17") -> str:
    """A thread some other client started, now waiting in the inbox."""
    client = api.sdk("operator")
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], GRAPH, input={"messages": [{"role": "user", "content": text}]})
    assert result["__interrupt__"], result
    return str(thread["thread_id"])


async def submit(api: Api, role: str, thread_id: str, response: dict[str, Any]) -> list[Any]:
    """The inbox's submit: one HumanResponse in a list, streamed as LangChain events."""
    stream = api.sdk(role).runs.stream(thread_id, GRAPH, command={"resume": [response]}, stream_mode="events")
    return [part async for part in stream]


def nodes_started(parts: list[Any]) -> list[str]:
    """The progress the inbox shows: each ``on_chain_start`` event's ``metadata.langgraph_node``."""
    return [
        p.data["metadata"]["langgraph_node"]
        for p in parts
        if p.event == "events"
        and isinstance(p.data, dict)
        and p.data.get("event") == "on_chain_start"
        and (p.data.get("metadata") or {}).get("langgraph_node")
    ]


async def after(api: Api, thread_id: str) -> dict[str, Any]:
    """The inbox's ``fetchSingleThread`` after a response: the thread, and its values."""
    thread = await api.sdk("viewer").threads.get(thread_id)
    assert thread["status"] == "idle" and inbox_interrupts(thread) is None, thread
    return dict(thread["values"])


async def audit(api: Api, thread_id: str) -> list[dict[str, Any]]:
    return list((await api["viewer"].get(f"/threads/{thread_id}/audit")).json()["events"])


async def test_the_inbox_lists_interrupted_threads_it_can_render(api: Api) -> None:
    first, second = await interrupted(api), await interrupted(api, "refund 40.00 on order B-9")
    done = await interrupted(api)
    await submit(api, "approver", done, {"type": "accept", "args": REFUND})
    assert (await api["viewer"].get("/info")).status_code == 200
    client = api.sdk("viewer")
    tab = await client.threads.search(offset=0, limit=100, status="interrupted", metadata={"graph_id": GRAPH})
    listed = {t["thread_id"]: t for t in tab}
    assert {first, second} <= set(listed) and done not in listed
    assert all(t["status"] == "interrupted" and t["metadata"]["graph_id"] == GRAPH for t in tab)
    thread = listed[first]
    assert len(thread["interrupts"]) == 1  # {task_id: [{id, value}]}
    [(task_id, items)] = thread["interrupts"].items()
    assert task_id and len(items) == 1 and items[0]["id"]
    rendered = inbox_interrupts(thread)
    assert rendered == [RENDERED] and not invalid_schema(rendered)
    assert inbox_interrupts(listed[second]) == [
        {**RENDERED, "action_request": {"action": "issue_refund", "args": {"order_id": "B-9", "amount": 40.0}},
         "description": "Refund 40.00 on order B-9"}
    ]  # fmt: skip
    # the fallback when a thread comes without interrupts: the state's last task's last interrupt
    state = await client.threads.get_state(first)
    assert _from_hitl(state["tasks"][-1]["interrupts"][-1]["value"]) == RENDERED
    everything = await client.threads.search(offset=0, limit=100, metadata={"graph_id": GRAPH})
    assert {first, second, done} <= {t["thread_id"] for t in everything}
    idle = await client.threads.search(offset=0, limit=100, status="idle", metadata={"graph_id": GRAPH})
    assert done in {t["thread_id"] for t in idle} and first not in {t["thread_id"] for t in idle}


@pytest.mark.parametrize(
    "args",
    [REFUND, {"action": "issue_refund", "args": {"order_id": "A-17", "amount": "120.0"}}, None],
    ids=["action-request", "stringified-args", "null"],  # the inbox's README promises strings; null without edit
)
async def test_accept_streams_progress_and_approves(api: Api, args: Any) -> None:
    thread_id = await interrupted(api)
    parts = await submit(api, "approver", thread_id, {"type": "accept", "args": args})
    assert parts[0].event == "metadata"
    assert not [p.data for p in parts if p.event == "error"]
    started = nodes_started(parts)
    assert "review" in started and "outcome" in started
    values = await after(api, thread_id)
    assert values["messages"][-1]["content"] == "Refunded 120.00 on order A-17 (approved by approver-1)."
    decision = values["decision"]
    assert decision["type"] == "approve" and decision["actor"] == {"id": "approver-1", "role": "approver"}
    assert decision["decided_at"]


async def test_edit_sends_the_edited_values_as_strings(api: Api) -> None:
    thread_id = await interrupted(api)
    edited = {"action": "issue_refund", "args": {"order_id": "A-17", "amount": "80"}}
    parts = await submit(api, "approver", thread_id, {"type": "edit", "args": edited})
    assert not [p.data for p in parts if p.event == "error"]
    assert "outcome" in nodes_started(parts)
    values = await after(api, thread_id)
    assert values["messages"][-1]["content"] == "Refunded 80.00 on order A-17 (edited by approver-1)."
    decision = values["decision"]
    assert decision["type"] == "edit" and decision["edited_action"]["name"] == "issue_refund"
    assert float(decision["edited_action"]["args"]["amount"]) == 80.0


async def test_a_response_rejects_with_the_text(api: Api) -> None:
    thread_id = await interrupted(api)
    parts = await submit(api, "approver", thread_id, {"type": "response", "args": "customer already got store credit"})
    assert not [p.data for p in parts if p.event == "error"]
    values = await after(api, thread_id)
    assert values["messages"][-1]["content"] == (
        "Refund on order A-17 not issued: customer already got store credit (rejected by approver-1)."
    )
    assert values["decision"]["type"] == "reject"
    assert values["decision"]["message"] == "customer already got store credit"


async def test_ignore_rejects_and_the_audit_says_ignored(api: Api) -> None:
    thread_id = await interrupted(api)
    client = api.sdk("approver")
    run = await client.runs.create(thread_id, GRAPH, command={"resume": [{"type": "ignore", "args": None}]})
    await client.runs.join(thread_id, run["run_id"])
    values = await after(api, thread_id)
    assert values["decision"]["type"] == "reject" and values["decision"]["actor"]["id"] == "approver-1"
    assert "refunded" not in values["messages"][-1]["content"].lower()
    decided = [e for e in await audit(api, thread_id) if e["kind"] == "decision"]
    assert len(decided) == 1 and decided[0]["who"] == "approver-1 (approver)"
    assert "ignored" in decided[0]["what"]


async def test_mark_as_resolved_ends_the_thread_and_is_audited(api: Api) -> None:
    thread_id = await interrupted(api)
    written = await api.sdk("approver").threads.update_state(thread_id, None, as_node="__end__")
    assert written["checkpoint"]["checkpoint_id"]
    values = await after(api, thread_id)
    assert values["messages"][-1]["content"].endswith(PROPOSAL_END)  # nothing ran after the proposal
    assert "decision" not in values
    state = await api.sdk("viewer").threads.get_state(thread_id)
    assert state["next"] == [] and not any(task["interrupts"] for task in state["tasks"])
    assert (await api["viewer"].get("/approvals", params={"thread_id": thread_id})).json()["total"] == 0
    events = await audit(api, thread_id)
    asked = next(i for i, e in enumerate(events) if e["kind"] == "approval_requested")
    resolved = [e for e in events[asked + 1 :] if e["who"] == "approver-1 (approver)"]
    assert resolved and any(word in resolved[0]["what"] for word in ("ignored", "resolved"))


@pytest.mark.parametrize("role", ["viewer", "operator"])
async def test_only_approvers_answer_from_the_inbox(api: Api, role: str) -> None:
    thread_id = await interrupted(api)
    for response in ({"type": "accept", "args": REFUND}, {"type": "response", "args": "no"}):
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await submit(api, role, thread_id, response)
        assert caught.value.response.status_code == 403
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await api.sdk(role).threads.update_state(thread_id, None, as_node="__end__")
    assert caught.value.response.status_code == 403
    thread = await api.sdk("viewer").threads.get(thread_id)
    assert thread["status"] == "interrupted" and inbox_interrupts(thread) == [RENDERED]


@pytest.mark.parametrize(
    ("values", "as_node"),
    [({"order": {"order_id": "A-17", "amount": 1.0}}, None), (None, "review"), ({"messages": []}, "__end__")],
    ids=["values", "as-another-node", "values-as-end"],
)
async def test_other_state_writes_to_an_interrupted_thread_are_409(api: Api, values: Any, as_node: str | None) -> None:
    thread_id = await interrupted(api)
    before = await api.sdk("viewer").threads.get(thread_id)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await api.sdk("admin").threads.update_state(thread_id, values, as_node=as_node)
    assert caught.value.response.status_code == 409
    thread = await api.sdk("viewer").threads.get(thread_id)
    assert thread["status"] == "interrupted" and thread["interrupts"] == before["interrupts"]


@pytest.mark.parametrize(
    ("response", "field"),
    [({"type": "maybe", "args": None}, "type"), ({"type": "edit", "args": None}, "args")],
    ids=["unknown-type", "edit-without-action"],
)
async def test_a_malformed_human_response_is_422(api: Api, response: dict[str, Any], field: str) -> None:
    thread_id = await interrupted(api)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await submit(api, "approver", thread_id, response)
    assert caught.value.response.status_code == 422
    assert field in caught.value.response.json()["detail"]
    assert (await api.sdk("viewer").threads.get(thread_id))["status"] == "interrupted"
