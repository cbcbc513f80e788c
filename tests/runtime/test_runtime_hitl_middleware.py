"""A LangChain v1 agent with ``HumanInTheLoopMiddleware`` served unchanged: its tool call waits in the approvals
inbox, and a decision there reaches the middleware as the v1 decision it expects (approve runs the tool, edit
runs it with the reviewer's arguments, reject answers the model instead of running it).

The middleware interrupts with ``{action_requests: [{name, args, description}], review_configs: [{action_name,
allowed_decisions}]}`` from its ``after_model`` node and resumes on ``{decisions: [{type: "approve"} | {type:
"edit", edited_action: {name, args}} | {type: "reject", message?}]}``, one per action request in order.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import Api

GRAPH = "hitl_agent"
NODE = "HumanInTheLoopMiddleware.after_model"


async def paused(api: Api, thread_id: str, text: str = "refund 120.00 on order A-17") -> dict[str, Any]:
    client = api.sdk("operator")
    await client.threads.create(thread_id=thread_id)
    result = await client.runs.wait(thread_id, GRAPH, input={"messages": [{"role": "user", "content": text}]})
    return dict(result)


async def decide(api: Api, thread_id: str, decision: dict[str, Any], role: str = "approver") -> httpx.Response:
    return await api[role].post(f"/approvals/{thread_id}/decision", json={"decisions": [decision]})


def tool_messages(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in values["messages"] if m["type"] == "tool"]


async def test_the_agent_pauses_at_the_tool_call_and_waits_in_the_inbox(api: Api) -> None:
    result = await paused(api, "agent-1")
    [pending] = result["__interrupt__"]
    request = pending["value"]
    action = request["action_requests"][0]
    assert action["name"] == "issue_refund" and action["args"] == {"order_id": "A-17", "amount": 120.0}
    assert action["description"] == "Refund 120.00 on order A-17"
    assert request["review_configs"] == [
        {"action_name": "issue_refund", "allowed_decisions": ["approve", "edit", "reject"]}
    ]
    assert [m["type"] for m in result["messages"]] == ["human", "ai"]  # the tool has not run
    assert result["messages"][-1]["tool_calls"][0]["name"] == "issue_refund"
    thread = await api.sdk("viewer").threads.get("agent-1")
    assert thread["status"] == "interrupted" and thread["metadata"]["graph_id"] == GRAPH
    inbox = (await api["viewer"].get("/approvals", params={"thread_id": "agent-1"})).json()
    assert inbox["total"] == 1
    item = inbox["items"][0]
    assert item["kind"] == "approval" and item["assistant_id"] == GRAPH and item["node"] == NODE
    assert item["interrupt_id"] == pending["id"]
    assert item["description"] == "Refund 120.00 on order A-17"
    assert item["action_requests"][0]["name"] == "issue_refund"
    assert item["action_requests"][0]["args"] == {"order_id": "A-17", "amount": 120.0}


async def test_approving_runs_the_tool_and_the_agent_answers(api: Api) -> None:
    await paused(api, "agent-2")
    response = await decide(api, "agent-2", {"type": "approve"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["run_status"] == "success" and body["thread_status"] == "idle" and body["pending"] == []
    values = body["values"]
    assert [m["type"] for m in values["messages"]] == ["human", "ai", "tool", "ai"]
    [ran] = tool_messages(values)
    assert ran["content"] == "refunded 120.00 on order A-17" and ran["status"] == "success"
    assert values["messages"][-1]["content"] == "The refund went through: refunded 120.00 on order A-17"
    audit = (await api["viewer"].get("/threads/agent-2/audit")).json()["events"]
    decided = [e for e in audit if e["kind"] == "decision"]
    assert len(decided) == 1 and decided[0]["who"] == "approver-1 (approver)"
    assert decided[0]["what"].startswith("approve issue_refund")


async def test_rejecting_answers_the_model_and_the_tool_never_runs(api: Api) -> None:
    await paused(api, "agent-3")
    response = await decide(api, "agent-3", {"type": "reject", "message": "customer already got store credit"})
    assert response.status_code == 200, response.text
    values = response.json()["values"]
    [answered] = tool_messages(values)
    assert answered["status"] == "error"  # written by the middleware, not by the tool
    assert "customer already got store credit" in answered["content"]
    assert not any("refunded" in m["content"] for m in tool_messages(values))
    assert values["messages"][-1]["content"].startswith("I did not issue the refund: ")


@pytest.mark.parametrize(
    "decision",
    [
        {"type": "edit", "edited_action": {"name": "issue_refund", "args": {"order_id": "A-17", "amount": 80.0}}},
        {"type": "edit", "args": {"amount": 80.0}, "comment": "partial refund"},  # the legacy form
    ],
    ids=["v1", "legacy"],
)
async def test_editing_runs_the_tool_with_the_reviewers_arguments(api: Api, decision: dict[str, Any]) -> None:
    thread_id = f"agent-edit-{decision.get('comment', 'v1').replace(' ', '-')}"
    await paused(api, thread_id)
    response = await decide(api, thread_id, decision)
    assert response.status_code == 200, response.text
    [ran] = tool_messages(response.json()["values"])
    assert ran["status"] == "success" and ran["content"].endswith("refunded 80.00 on order A-17")


async def test_only_an_approver_decides_for_the_agent(api: Api) -> None:
    await paused(api, "agent-4")
    assert (await decide(api, "agent-4", {"type": "approve"}, role="operator")).status_code == 403
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await api.sdk("operator").runs.wait("agent-4", GRAPH, command={"resume": {"decisions": [{"type": "approve"}]}})
    assert caught.value.response.status_code == 403
    state = await api.sdk("viewer").threads.get_state("agent-4")
    assert state["next"] == [NODE] and not tool_messages(state["values"])
