"""The approval bypasses, each tried as an attacker would, and the role of every route.

Each test here failed on the runtime before the fixes: an operator answering an approval through LangGraph's
internal resume key; edited amounts as strings, negatives or NaN; a fork re-opening a decided approval; an
operator deleting audit trails or writing state into a waiting thread; routes answering without a key.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest
from conftest import Api

from server.app import create_app

REFUND = {"order_id": "A-17", "amount": 120.0}


async def waiting(api: Api, thread_id: str, amount: float = 120.0) -> None:
    client = api.sdk("operator")
    await client.threads.create(thread_id=thread_id)
    result = await client.runs.wait(thread_id, "approval", input={"order_id": "A-17", "amount": amount})
    assert result["__interrupt__"], result


async def assert_still_waiting(api: Api, thread_id: str) -> None:
    thread = (await api["viewer"].get(f"/threads/{thread_id}")).json()
    assert thread["status"] == "interrupted", thread
    assert "refunded" not in (thread["values"] or {})
    assert (await api["viewer"].get("/approvals", params={"thread_id": thread_id})).json()["total"] == 1


async def test_the_internal_resume_key_in_configurable_is_refused(api: Api) -> None:
    await waiting(api, "sec-resume-map", 900.0)
    interrupt_id = (await api["viewer"].get("/approvals", params={"thread_id": "sec-resume-map"})).json()["items"][0][
        "interrupt_id"
    ]
    for key in ("__pregel_resume_map", "__pregel_scratchpad", "checkpoint_ns", "checkpoint_map"):
        body = {"assistant_id": "approval", "config": {"configurable": {key: {interrupt_id: {"decisions": [
            {"type": "approve"}]}}}}}  # fmt: skip
        response = await api["operator"].post("/threads/sec-resume-map/runs/wait", json=body)
        assert response.status_code == 422, response.text
        assert f"config.configurable.{key}" in response.json()["detail"]
    await assert_still_waiting(api, "sec-resume-map")


@pytest.mark.parametrize(
    ("amount", "field"),
    [("lots", "edited_action.args.amount: must be a float"), (-5000, "must be a finite number >= 0"),
     ("-5000", "must be a finite number >= 0"), ("NaN", "must be a finite number"),
     (math.nan, "NaN is not allowed; numbers must be finite"),
     (math.inf, "Infinity is not allowed; numbers must be finite"), (True, "must be a float")],
)  # fmt: skip
async def test_an_edited_amount_must_be_a_finite_number_at_least_zero(api: Api, amount: Any, field: str) -> None:
    thread_id = f"sec-amount-{abs(hash(repr(amount))) % 10**6}"
    await waiting(api, thread_id)
    for decision in (
        {"type": "edit", "edited_action": {"name": "issue_refund", "args": {**REFUND, "amount": amount}}},
        {"type": "edit", "args": {"amount": amount}, "comment": "older form"},
    ):
        content = json.dumps({"decisions": [decision]})  # NaN and Infinity as Python's json writes them
        response = await api["approver"].post(f"/approvals/{thread_id}/decision", content=content,
                                              headers={"content-type": "application/json"})  # fmt: skip
        assert response.status_code == 422, response.text
        assert field in response.json()["detail"]
    await assert_still_waiting(api, thread_id)


async def test_the_authority_check_uses_the_edited_amount(api: Api) -> None:
    await waiting(api, "sec-edit-up", 100.0)
    up = {"type": "edit", "edited_action": {"name": "issue_refund", "args": {**REFUND, "amount": 5000.0}}}
    response = await api["approver"].post("/approvals/sec-edit-up/decision", json={"decisions": [up]})
    assert response.status_code == 403
    assert "approving refund for 5,000.00 exceeds the approver authority of 200.00" in response.json()["detail"]
    as_text = {"type": "edit", "edited_action": {"name": "issue_refund", "args": {**REFUND, "amount": "5000"}}}
    response = await api["approver"].post("/approvals/sec-edit-up/decision", json={"decisions": [as_text]})
    assert response.status_code == 403  # the UIs' forms send strings: "5000" is read as 5000, then checked
    inbox = [{"type": "edit", "args": {"action": "issue_refund", "args": {"order_id": "A-17", "amount": "5000"}}}]
    response = await api["approver"].post("/threads/sec-edit-up/runs/wait",
                                           json={"assistant_id": "approval", "command": {"resume": inbox}})  # fmt: skip
    assert response.status_code == 403
    await assert_still_waiting(api, "sec-edit-up")


async def test_a_fork_cannot_reopen_a_decided_approval(api: Api) -> None:
    await waiting(api, "sec-fork")
    history = await api.sdk("viewer").threads.get_history("sec-fork", limit=20)
    asked = next(s for s in history if s["next"] == ["approve"])  # where the approval was requested
    decided = await api["approver"].post("/approvals/sec-fork/decision", json={"decisions": [{"type": "approve"}]})
    assert decided.json()["values"]["refunded"] == 120.0
    before = [s["checkpoint"]["checkpoint_id"] for s in history if s["created_at"] <= asked["created_at"]]
    for checkpoint_id in before:  # the checkpoint that asked, and every one before it
        for body in ({"assistant_id": "approval", "checkpoint_id": checkpoint_id},
                     {"assistant_id": "approval", "input": REFUND, "checkpoint": {"checkpoint_id": checkpoint_id}}):
            response = await api["operator"].post("/threads/sec-fork/runs/wait", json=body)
            assert response.status_code == 409, response.text
            assert "already decided by approver-1" in response.json()["detail"]
        update = {"values": {"amount": 1.0}, "checkpoint": {"checkpoint_id": checkpoint_id}}
        written = await api["admin"].post("/threads/sec-fork/state", json=update)
        assert written.status_code == 409
    assert (await api["viewer"].get("/approvals", params={"thread_id": "sec-fork"})).json()["total"] == 0
    head = (await api.sdk("viewer").threads.get_history("sec-fork", limit=1))[0]["checkpoint"]["checkpoint_id"]
    replay = await api["operator"].post("/threads/sec-fork/runs/wait",
                                        json={"assistant_id": "approval", "checkpoint_id": head})  # fmt: skip
    assert replay.status_code == 200  # forking after the decision is fine: nothing is asked again
    state = (await api["viewer"].get("/threads/sec-fork/state")).json()
    assert state["values"]["log"].count("finalize") == 1


async def test_only_admins_delete_threads_and_runs(api: Api) -> None:
    await api.sdk("operator").threads.create(thread_id="sec-delete")
    run = await api.sdk("operator").runs.create("sec-delete", "chain", input={})
    await api.sdk("operator").runs.join("sec-delete", run["run_id"])
    for path in ("/threads/sec-delete", f"/threads/sec-delete/runs/{run['run_id']}"):
        response = await api["operator"].delete(path)
        assert response.status_code == 403 and "needs the admin role" in response.json()["detail"]
    assert (await api["admin"].delete(f"/threads/sec-delete/runs/{run['run_id']}")).status_code == 204
    assert (await api["admin"].delete("/threads/sec-delete")).status_code == 204


async def test_nobody_writes_state_into_a_thread_waiting_for_approval(api: Api) -> None:
    await waiting(api, "sec-state")
    forged = {"values": {"decision": {"type": "approve"}}, "as_node": "approve"}
    assert (await api["operator"].post("/threads/sec-state/state", json=forged)).status_code == 403
    assert (await api["approver"].post("/threads/sec-state/state", json=forged)).status_code == 403
    refused = await api["admin"].post("/threads/sec-state/state", json=forged)
    assert refused.status_code == 409 and "waits at an interrupt" in refused.json()["detail"]
    for command in ({"goto": "finalize", "update": {"decision": {"type": "approve"}}}, {"goto": "finalize"},
                    {"update": {"decision": {"type": "approve"}}}):  # fmt: skip
        response = await api["admin"].post("/threads/sec-state/runs/wait",
                                           json={"assistant_id": "approval", "command": command})  # fmt: skip
        assert response.status_code == 409 and "waits for an approval" in response.json()["detail"], command
    new_input = {"assistant_id": "approval", "input": {"decision": {"type": "approve"}}}
    response = await api["operator"].post("/threads/sec-state/runs/wait", json=new_input)
    assert response.status_code == 409
    await assert_still_waiting(api, "sec-state")


async def test_ending_an_approval_without_a_decision_is_an_approvers_act_and_is_audited(api: Api) -> None:
    await waiting(api, "sec-resolve")
    ignore = {"values": None, "as_node": "__end__"}
    assert (await api["operator"].post("/threads/sec-resolve/state", json=ignore)).status_code == 403
    resolve = {"assistant_id": "approval", "input": {}, "command": {"goto": "__end__"}}
    assert (await api["operator"].post("/threads/sec-resolve/runs/wait", json=resolve)).status_code == 403
    done = await api["approver"].post("/threads/sec-resolve/runs/wait", json=resolve)
    assert done.status_code == 200, done.text
    assert "refunded" not in done.json() and "__interrupt__" not in done.json()
    thread = (await api["viewer"].get("/threads/sec-resolve")).json()
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    events = (await api["viewer"].get("/threads/sec-resolve/audit")).json()["events"]
    resolved = [e for e in events if e["kind"] == "resolved"]
    assert len(resolved) == 1 and resolved[0]["who"] == "approver-1 (approver)"
    assert "nothing was executed" in resolved[0]["what"]
    await waiting(api, "sec-ignore")
    written = await api["approver"].post("/threads/sec-ignore/state", json=ignore)
    assert written.status_code == 200 and written.json()["checkpoint"]["checkpoint_id"]
    assert (await api["viewer"].get("/threads/sec-ignore")).json()["status"] == "idle"
    events = (await api["viewer"].get("/threads/sec-ignore/audit")).json()["events"]
    assert [e["who"] for e in events if e["kind"] == "resolved"] == ["approver-1 (approver)"]


async def test_a_malformed_approval_cannot_be_answered_as_a_question(api: Api) -> None:
    """An interrupt shaped like an approval that fails the schema fails closed."""
    await waiting(api, "sec-malformed")
    async with api.runtime.pool.connection() as conn:  # as a graph with a broken approval would leave it
        await conn.execute(
            "UPDATE threads SET interrupts = jsonb_set(interrupts, '{0,value,action_requests,0,amount}', "
            "'\"lots\"') WHERE thread_id = 'sec-malformed'"
        )
    answer = {"assistant_id": "approval", "command": {"resume": "yes"}}
    response = await api["admin"].post("/threads/sec-malformed/runs/wait", json=answer)
    assert response.status_code == 409 and "nobody may decide it" in response.json()["detail"]
    item = (await api["admin"].get("/approvals", params={"thread_id": "sec-malformed"})).json()["items"][0]
    assert item["kind"] == "approval" and item["can_decide"] is False


async def test_sizes_are_bounded(api: Api) -> None:
    big = {"note": "x" * 70_000}
    response = await api["operator"].post("/threads", json={"metadata": big})
    assert response.status_code == 413 and "metadata:" in response.json()["detail"]
    await api["operator"].post("/threads", json={"thread_id": "sec-size"})
    huge = {"assistant_id": "chain", "input": {"blob": "y" * 1_100_000}}
    response = await api["operator"].post("/threads/sec-size/runs/wait", json=huge)
    assert response.status_code == 413 and "input:" in response.json()["detail"]
    response = await api["operator"].post("/threads", content=b"{" + b" " * 5_000_000 + b"}",
                                          headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 413 and "RIMAS_MAX_BODY_BYTES" in response.json()["detail"]


# -- every route needs a key (only /ok does not), and the least role it declares ---------------------------------

ROLES = ("viewer", "operator", "approver", "admin")
LEAST_ROLE: dict[tuple[str, str], str | None] = {
    ("POST", "/predict"): "operator",
    ("POST", "/predict/batch"): "operator",
    ("POST", "/events"): "operator",
    ("POST", "/detect-anomaly"): "operator",
    ("POST", "/trigger-agent"): "operator",
    ("GET", "/batch/{batch_id}/status"): "viewer",
    ("GET", "/batch/{batch_id}/predictions"): "viewer",
    ("GET", "/batch/{batch_id}/deviations"): "viewer",
    ("GET", "/batch/{batch_id}/agent-responses"): "viewer",
    ("GET", "/kpi/dashboard"): "viewer",
    ("GET", "/kpi/trend"): "viewer",
    ("GET", "/deviations"): "viewer",
    ("GET", "/deviations/{deviation_id}"): "viewer",
    ("GET", "/orders/{order_id}"): "viewer",
    ("GET", "/agent-response/{deviation_id}"): "viewer",
    ("POST", "/plans"): "operator",
    ("GET", "/plans"): "viewer",
    ("GET", "/plans/{plan_id}"): "viewer",
    ("GET", "/plans/{plan_id}/events"): "viewer",
    ("GET", "/plans/{plan_id}/series"): "viewer",
    ("GET", "/plans/stores"): "viewer",
    ("POST", "/plans/{plan_id}/approve"): "approver",
    ("POST", "/plans/{plan_id}/reject"): "approver",
    ("GET", "/ok"): None,
    ("GET", "/health"): "viewer",
    ("GET", "/info"): "viewer",
    ("GET", "/auth/me"): "viewer",
    ("GET", "/docs"): "viewer",
    ("GET", "/redoc"): "viewer",
    ("GET", "/openapi.json"): "viewer",
    ("POST", "/assistants/search"): "viewer",
    ("POST", "/assistants/count"): "viewer",
    ("GET", "/assistants/{assistant_id}"): "viewer",
    ("GET", "/assistants/{assistant_id}/graph"): "viewer",
    ("GET", "/assistants/{assistant_id}/schemas"): "viewer",
    ("GET", "/assistants/{assistant_id}/subgraphs"): "viewer",
    ("GET", "/assistants/{assistant_id}/subgraphs/{namespace}"): "viewer",
    ("POST", "/assistants"): "admin",
    ("PATCH", "/assistants/{assistant_id}"): "admin",
    ("DELETE", "/assistants/{assistant_id}"): "admin",
    ("POST", "/assistants/{assistant_id}/versions"): "viewer",
    ("POST", "/assistants/{assistant_id}/latest"): "admin",
    ("PUT", "/store/items"): "operator",
    ("GET", "/store/items"): "viewer",
    ("DELETE", "/store/items"): "operator",
    ("POST", "/store/items/search"): "viewer",
    ("POST", "/store/namespaces"): "viewer",
    ("POST", "/runs/stream"): "operator",
    ("POST", "/runs/wait"): "operator",
    ("POST", "/runs"): "operator",
    ("POST", "/runs/crons"): "operator",
    ("POST", "/threads/{thread_id}/runs/crons"): "operator",
    ("PATCH", "/runs/crons/{cron_id}"): "operator",
    ("DELETE", "/runs/crons/{cron_id}"): "operator",
    ("POST", "/runs/crons/search"): "viewer",
    ("POST", "/runs/crons/count"): "viewer",
    ("POST", "/threads"): "operator",
    ("POST", "/threads/search"): "viewer",
    ("POST", "/threads/count"): "viewer",
    ("GET", "/threads/{thread_id}"): "viewer",
    ("PATCH", "/threads/{thread_id}"): "operator",
    ("DELETE", "/threads/{thread_id}"): "admin",
    ("GET", "/threads/{thread_id}/state"): "viewer",
    ("POST", "/threads/{thread_id}/state"): "approver",
    ("POST", "/threads/{thread_id}/copy"): "operator",
    ("GET", "/threads/{thread_id}/state/{checkpoint_id}"): "viewer",
    ("POST", "/threads/{thread_id}/state/checkpoint"): "viewer",
    ("GET", "/threads/{thread_id}/history"): "viewer",
    ("POST", "/threads/{thread_id}/history"): "viewer",
    ("GET", "/threads/{thread_id}/audit"): "viewer",
    ("POST", "/threads/{thread_id}/runs/stream"): "operator",
    ("POST", "/threads/{thread_id}/runs/wait"): "operator",
    ("POST", "/threads/{thread_id}/runs"): "operator",
    ("GET", "/threads/{thread_id}/runs"): "viewer",
    ("GET", "/threads/{thread_id}/runs/{run_id}"): "viewer",
    ("DELETE", "/threads/{thread_id}/runs/{run_id}"): "admin",
    ("GET", "/threads/{thread_id}/runs/{run_id}/join"): "viewer",
    ("GET", "/threads/{thread_id}/runs/{run_id}/stream"): "viewer",
    ("POST", "/threads/{thread_id}/runs/{run_id}/cancel"): "operator",
    ("GET", "/approvals"): "viewer",
    ("POST", "/approvals/{thread_id}/decision"): "approver",
    ("POST", "/knowledge/search"): "viewer",
    ("POST", "/knowledge/ingest"): "admin",
    ("DELETE", "/knowledge/documents/{doc_id}"): "admin",
    ("GET", "/knowledge/documents"): "viewer",
    ("GET", "/models"): "viewer",
    ("GET", "/models/{name}"): "viewer",
    ("POST", "/feedback"): "operator",
    ("POST", "/feedback/preference-pair"): "operator",
    ("GET", "/feedback/stats"): "viewer",
    ("GET", "/feedback/export"): "admin",
    ("POST", "/api/inventory/query"): "viewer",
    ("POST", "/api/inventory/update"): "operator",
    ("POST", "/api/pricing/calculate"): "viewer",
    ("POST", "/api/pricing/recommend"): "viewer",
    ("POST", "/api/audit/compliance-check"): "viewer",
    ("POST", "/api/customer/profile"): "viewer",
    ("POST", "/api/customer/support-ticket"): "operator",
    ("POST", "/api/customer/loyalty"): "viewer",
    ("POST", "/api/ai/query"): "viewer",
    ("GET", "/api/ai/task/{task_id}"): "viewer",
    ("GET", "/api/ai/audit"): "viewer",
    ("POST", "/chat/stream"): "viewer",
}
PATH_VALUES = {"thread_id": "t-1", "run_id": "00000000-0000-4000-8000-000000000001", "assistant_id": "chain",
               "checkpoint_id": "1f0b7e3c-0000-6000-8000-000000000000", "namespace": "n", "doc_id": "d-1",
               "batch_id": "00000000-0000-4000-8000-000000000002",
               "deviation_id": "00000000-0000-4000-8000-000000000003",
               "order_id": "o-1", "plan_id": "00000000-0000-4000-8000-000000000004",
               "task_id": "00000000-0000-4000-8000-000000000005", "name": "delay",
               "cron_id": "00000000-0000-4000-8000-000000000006"}  # fmt: skip


async def test_every_route_needs_a_key_and_its_least_role(api: Api) -> None:
    document = (await api["viewer"].get("/openapi.json")).json()
    served = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    served |= {("GET", "/docs"), ("GET", "/redoc"), ("GET", "/openapi.json")}
    assert served == set(LEAST_ROLE), "classify every route's least role in LEAST_ROLE"
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rimas.test") as anonymous:
        for (method, path), least in LEAST_ROLE.items():
            url = path.format(**PATH_VALUES)
            body = {"json": {}} if method in ("POST", "PATCH") else {}
            response = await anonymous.request(method, url, **body)
            if least is None:
                assert response.status_code == 200, url
                continue
            assert response.status_code == 401, (method, url, response.status_code)
            wrong = await anonymous.request(method, url, headers={"x-api-key": "not-a-key"}, **body)
            assert wrong.status_code == 401, (method, url)
            if least == "viewer":
                continue
            below = ROLES[ROLES.index(least) - 1]
            response = await api[below].request(method, url, **body)
            assert response.status_code == 403, (method, url, below, response.status_code, response.text)
            assert f"needs the {least} role" in response.json()["detail"]


# -- auth off: loopback only ---------------------------------------------------------------------------------------


def test_create_app_refuses_a_public_address_with_auth_off(settings_factory: Any) -> None:
    with pytest.raises(ValueError, match=r"RIMAS_HOST=0\.0\.0\.0 is not a loopback address and auth is off"):
        create_app(settings_factory(host="0.0.0.0"))


@pytest.mark.parametrize(
    ("client", "host", "status"),
    [(("127.0.0.1", 5000), "127.0.0.1:8000", 200), (("127.0.0.1", 5000), "localhost:8000", 200),
     (("::1", 5000), "[::1]:8000", 200), (("127.0.0.1", 5000), "rebind.attacker.example:8000", 421),
     (("127.0.0.1", 5000), "127.0.0.1.nip.io", 421), (("192.168.1.20", 5000), "127.0.0.1:8000", 421)],
)  # fmt: skip
async def test_auth_off_serves_only_loopback_peers_addressing_a_loopback_name(
    settings_factory: Any, database_url: str, client: tuple[str, int], host: str, status: int
) -> None:
    app = create_app(settings_factory(database_url=database_url, seed_on_start=False, train_models_on_start=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            response = await http.get("/ok", headers={"host": host})
    assert response.status_code == status
    if status == 421:
        assert response.json()["error"]["code"] == "loopback_only"
