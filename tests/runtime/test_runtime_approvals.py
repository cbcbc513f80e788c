"""Approvals: the inbox across threads, decisions validated (422) and authorised (403), one resume only (409),
and the approver recorded in the state and the audit trail."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from conftest import Api

from server.auth import Principal
from server.runtime.authority import Authority, authority_from_policy, authority_problem, check_authority
from server.runtime.interrupts import ActionRequest, ApprovalRequest, Decision, validate_decisions

REFUND = {"order_id": "A-17", "amount": 120.0}


async def interrupted_thread(api: Api, thread_id: str, refund: dict[str, Any] = REFUND) -> dict[str, Any]:
    client = api.sdk("operator")
    await client.threads.create(thread_id=thread_id, metadata={"team": "refunds"})
    result = await client.runs.wait(thread_id, "approval", input=refund)
    assert result["__interrupt__"], result
    return result


def approve(comment: str = "looks right") -> dict[str, Any]:
    return {"decisions": [{"type": "approve", "comment": comment}]}


async def test_the_inbox_lists_pending_interrupts_across_threads(api: Api) -> None:
    await interrupted_thread(api, "inbox-1")
    await interrupted_thread(api, "inbox-2", {"order_id": "B-2", "amount": 30.0})
    await api.sdk("operator").runs.wait(await _new_thread(api), "chain", input={})
    response = await api["viewer"].get("/approvals")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2
    first = body["items"][0]
    assert first["thread_id"] == "inbox-1" and first["assistant_id"] == "approval"
    assert first["kind"] == "approval" and first["node"] == "approve"
    assert first["description"] == "Refund 120.00 on order A-17"
    assert first["required_role"] == "approver" and first["total_amount"] == 120.0
    action = first["action_requests"][0]
    assert action["args"] == {"order_id": "A-17", "amount": 120.0}
    assert action["policy_reason"] == "refunds above 50.00 need a person"
    assert action["allowed_decisions"] == ["approve", "edit", "reject"]
    assert first["waiting_since"] <= body["items"][1]["waiting_since"]
    assert first["can_decide"] is False  # a viewer asked
    assert (await api["approver"].get("/approvals", params={"decidable": True})).json()["total"] == 2
    assert (await api["viewer"].get("/approvals", params={"min_amount": 100})).json()["total"] == 1
    assert (await api["viewer"].get("/approvals", params={"assistant_id": "chain"})).json()["total"] == 0
    assert (await api["viewer"].get("/approvals", params={"thread_id": "inbox-2"})).json()["items"][0][
        "total_amount"
    ] == 30


async def _new_thread(api: Api) -> str:
    return str((await api.sdk("operator").threads.create())["thread_id"])


async def test_a_decision_resumes_and_records_the_approver(api: Api) -> None:
    await interrupted_thread(api, "decide-1")
    response = await api["approver"].post("/approvals/decide-1/decision", json=approve("refund ok, late twice"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["run_status"] == "success" and body["thread_status"] == "idle" and body["pending"] == []
    values = body["values"]
    assert values["outcome"] == "refunded" and values["refunded"] == 120.0
    decision = values["decision"]
    assert decision["actor"] == {"id": "approver-1", "role": "approver"}
    assert decision["message"] == "refund ok, late twice" and decision["decided_at"]
    assert values["decided_by"] == "approver-1"  # the graph saw the principal in its context
    assert values["started_by"] == "operator-1"
    assert (await api["viewer"].get("/approvals", params={"thread_id": "decide-1"})).json()["total"] == 0
    audit = (await api["viewer"].get("/threads/decide-1/audit")).json()["events"]
    kinds = [e["kind"] for e in audit]
    assert kinds.index("run_started") < kinds.index("approval_requested") < kinds.index("decision")
    decided = next(e for e in audit if e["kind"] == "decision")
    assert decided["who"] == "approver-1 (approver)"
    assert decided["what"] == "approve issue_refund: 'refund ok, late twice'"
    assert decided["when"] == decision["decided_at"]
    asked = next(e for e in audit if e["kind"] == "approval_requested")
    assert "amount 120.00" in asked["what"] and "needs approver" in asked["what"]
    assert next(e for e in audit if e["kind"] == "run_started")["who"] == "operator-1 (operator)"
    assert audit[-1]["what"].startswith("finalize wrote")
    text = (await api["viewer"].get("/threads/decide-1/audit", params={"format": "text"})).text
    assert "approver-1 (approver)" in text and "refund ok, late twice" in text


async def test_edit_and_reject_decisions(api: Api) -> None:
    await interrupted_thread(api, "edit-1")
    edit = {"decisions": [{"type": "edit", "args": {"amount": 80.0}, "comment": "partial refund"}]}
    body = (await api["approver"].post("/approvals/edit-1/decision", json=edit)).json()
    assert body["values"]["refunded"] == 80.0
    await interrupted_thread(api, "reject-1")
    reject = {"decisions": [{"type": "reject", "comment": "customer already got store credit"}]}
    body = (await api["approver"].post("/approvals/reject-1/decision", json=reject)).json()
    assert body["values"]["outcome"] == "rejected" and body["values"]["refunded"] == 0.0


async def test_who_may_decide(api: Api) -> None:
    await interrupted_thread(api, "auth-1", {"order_id": "C-3", "amount": 250.0})
    viewer = await api["viewer"].post("/approvals/auth-1/decision", json=approve())
    assert viewer.status_code == 403 and "approver role" in viewer.json()["error"]["message"]
    with pytest.raises(httpx.HTTPStatusError) as caught:  # an operator cannot sneak a decision through /runs
        await api.sdk("operator").runs.wait("auth-1", "approval", command={"resume": approve()})
    assert caught.value.response.status_code == 403
    # the policy file's refund authority: approver 200, admin unlimited
    over = await api["approver"].post("/approvals/auth-1/decision", json=approve())
    assert over.status_code == 403
    assert "approving refund for 250.00 exceeds the approver authority of 200.00" in over.json()["error"]["message"]
    inbox = (await api["approver"].get("/approvals", params={"thread_id": "auth-1"})).json()["items"][0]
    assert inbox["can_decide"] is False
    assert (await api["admin"].get("/approvals", params={"thread_id": "auth-1"})).json()["items"][0]["can_decide"]
    partial = {"decisions": [{"type": "edit", "args": {"amount": 150.0}, "comment": "within my authority"}]}
    decided = await api["approver"].post("/approvals/auth-1/decision", json=partial)
    assert decided.status_code == 200 and decided.json()["values"]["refunded"] == 150.0


async def test_an_admin_approves_above_the_approver_limit(api: Api) -> None:
    await interrupted_thread(api, "auth-2", {"order_id": "C-4", "amount": 900.0})
    response = await api["admin"].post("/approvals/auth-2/decision", json=approve("large but justified"))
    assert response.status_code == 200 and response.json()["values"]["refunded"] == 900.0


@pytest.mark.parametrize(
    ("resume", "reason"),
    [
        ({}, "decisions: Field required"),
        ({"decisions": []}, "expected 1 decision(s)"),
        ({"decisions": [{"type": "maybe"}]}, "decisions.0.type"),
        ({"decisions": [{"type": "reject"}]}, "decisions.0.message: a reject needs a message"),
        ({"decisions": [{"type": "edit"}]}, "an edit must carry the edited action"),
        ({"decisions": [{"type": "edit", "args": {"ammount": 5}}]},
         "decisions.0.edited_action.args.ammount: not an argument"),
        ({"decisions": [{"type": "edit", "edited_action": {"name": "wire_money", "args": {"amount": 5}}}]},
         "decisions.0.edited_action.name: an edit cannot change the action"),
        ({"decisions": [{"type": "respond", "message": "done by hand"}]}, "'respond' is not allowed"),
        ({"decisions": [{"type": "approve"}], "note": "x"}, "note: is not allowed"),
        ({"decisions": [{"type": "approve", "args": {"amount": 5}}]}, "only an edit carries args"),
        ({"decisions": [{"type": "approve", "actor": "me"}]}, "decisions.0.actor: Extra inputs are not permitted"),
        ("yes", "resume: must be an object"),
    ],
)
async def test_a_malformed_resume_is_422_with_the_reason(api: Api, resume: Any, reason: str) -> None:
    thread_id = f"bad-{abs(hash(str(resume))) % 10**8}"
    await interrupted_thread(api, thread_id)
    response = await api["approver"].post(f"/threads/{thread_id}/runs/wait",
                                          json={"assistant_id": "approval", "command": {"resume": resume}})  # fmt: skip
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]
    assert (await api.sdk("viewer").threads.get(thread_id))["status"] == "interrupted"  # nothing was consumed


async def test_two_concurrent_decisions_exactly_one_executes(api: Api) -> None:
    await interrupted_thread(api, "double-1")
    responses = await asyncio.gather(
        *(api["approver"].post("/approvals/double-1/decision", json=approve(f"decision {i}")) for i in range(3))
    )
    assert sorted(r.status_code for r in responses) == [200, 409, 409]
    state = await api.sdk("viewer").threads.get_state("double-1")
    assert state["values"]["log"] == ["prepare", "approve", "finalize"]
    assert len(await api.sdk("viewer").runs.list("double-1")) == 2  # the first run and one resume
    late = await api["approver"].post("/approvals/double-1/decision", json=approve())
    assert late.status_code == 409


async def test_two_concurrent_sdk_resumes_exactly_one_executes(api: Api) -> None:
    await interrupted_thread(api, "double-2")
    client = api.sdk("approver")
    outcomes = await asyncio.gather(
        *(client.runs.create("double-2", "approval", command={"resume": approve()}) for _ in range(3)),
        return_exceptions=True,
    )
    created = [o for o in outcomes if isinstance(o, dict)]
    conflicts = [o for o in outcomes if isinstance(o, Exception)]
    assert len(created) == 1 and len(conflicts) == 2  # whatever the strategy: an answer never queues
    assert all(getattr(c, "status_code", None) == 409 for c in conflicts)
    result = await client.runs.join("double-2", created[0]["run_id"])
    assert result["log"] == ["prepare", "approve", "finalize"]


async def test_a_stale_interrupt_id_is_a_409(api: Api) -> None:
    await interrupted_thread(api, "stale-1")
    response = await api["approver"].post(
        "/approvals/stale-1/decision", json={**approve(), "interrupt_id": "not-the-pending-one"}
    )
    assert response.status_code == 409 and "not pending" in response.json()["detail"]


def test_amount_authority_is_data() -> None:
    action = ActionRequest(
        name="issue_refund", policy_action="refund", description="refund", amount=250.0, args={"amount": 250.0}
    )
    authority = Authority({"refund": {"viewer": 0, "operator": 50, "approver": 200.0, "admin": None}},
                          {"order_cancellation": "admin"})  # fmt: skip
    approver, admin = Principal("a", "approver"), Principal("b", "admin")
    yes, no = Decision(type="approve"), Decision(type="reject", message="no")
    assert "exceeds the approver authority of 200.00" in (authority_problem(approver, action, yes, authority) or "")
    assert authority_problem(admin, action, yes, authority) is None
    assert authority_problem(approver, action, no, authority) is None  # refusing needs no amount authority
    edit_down = Decision(type="edit", edited_action={"name": "issue_refund", "args": {"amount": 150.0}})
    assert authority_problem(approver, action, edit_down, authority) is None
    assert authority_problem(approver, action, yes, None) is None  # no policy: the role check only
    needs_admin = action.model_copy(update={"required_role": "admin"})
    assert "needs the admin role" in (authority_problem(approver, needs_admin, yes, authority) or "")
    cancel = ActionRequest(name="order_cancellation", description="cancel the order")
    assert "only admin or above" in (authority_problem(approver, cancel, yes, authority) or "")
    request = ApprovalRequest(action_requests=[action, action.model_copy(update={"amount": 10.0})])
    value = validate_decisions({"decisions": [{"type": "approve"}, {"type": "approve"}]}, request)
    assert check_authority(approver, request, value, authority) == [
        "decisions.0: approving refund for 250.00 exceeds the approver authority of 200.00; "
        "someone with a higher limit must decide"
    ]
    operator_only = Principal("o", "operator")
    small = action.model_copy(update={"amount": 40.0, "required_role": "operator"})
    assert authority_problem(operator_only, small, yes, authority) is None
    assert authority_problem(Principal("v", "viewer"), small.model_copy(update={"required_role": "viewer"}), yes,
                             authority) is not None  # a zero limit is no authority  # fmt: skip


def test_the_policy_file_supplies_the_authority() -> None:
    from rag.policy import get_policy

    authority = authority_from_policy(get_policy())
    policy = get_policy().approval
    assert authority.amount_limits["refund"]["approver"] == policy.limit("approver", "refund")
    assert authority.min_roles == dict(policy.action_min_role)
