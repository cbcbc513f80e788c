"""The chat over HTTP: ``POST /chat/stream`` (SSE, threads that remember), the shop assistant's ``/api/ai/*`` (the
seed's envelopes, audited tasks a key sees only its own of), starting a plan from the chat (operators only), and
``rimas chat`` printing a streamed answer and its table."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import psycopg

from server.chat_cli import chat_session
from tools import deps as tool_deps
from tools import sales


def events(body: str) -> list[tuple[str, Any]]:
    """``(event, data)`` pairs of an SSE body."""
    found = []
    for block in body.strip().split("\r\n\r\n" if "\r\n\r\n" in body else "\n\n"):
        lines = block.splitlines()
        name = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), "message")
        data = "\n".join(ln[5:].strip() for ln in lines if ln.startswith("data:"))
        found.append((name, json.loads(data) if data else None))
    return found


async def chat(client: httpx.AsyncClient, message: str, thread_id: str | None = None) -> list[tuple[str, Any]]:
    body = {"message": message, **({"thread_id": thread_id} if thread_id else {})}
    response = await client.post("/chat/stream", json=body)
    assert response.status_code == 200, response.text
    return events(response.text)


def answer_text(stream: list[tuple[str, Any]]) -> str:
    """The last AI message's text in a ``messages-tuple`` stream."""
    texts = [data[0]["content"] for name, data in stream if name.startswith("messages") and data[0]["type"] == "ai"]
    return str(texts[-1])


async def test_chat_stream_answers_and_remembers_the_thread(
    served: dict[str, Any], db: psycopg.Connection[Any]
) -> None:
    stream = await chat(served["viewer"], "How many units did store 1 sell in the last 7 days?")
    assert stream[0][0] == "metadata" and "end" not in {name for name, _ in stream}
    thread = stream[0][1]["thread_id"]
    custom = [data for name, data in stream if name == "custom"]
    assert custom[0]["type"] == "chat.answer" and custom[0]["intent"] == "sales.summary" and custom[0]["table"]["rows"]
    end = await sales.as_of()
    units = db.execute("SELECT sum(units) AS u FROM sales_daily WHERE store_id = %s AND date BETWEEN %s AND %s",
                       (1, end - timedelta(days=6), end)).fetchone()["u"]  # fmt: skip
    assert f"{units:,}" in answer_text(stream)

    follow = await chat(served["viewer"], "and at store 2?", thread)
    assert follow[0][1]["thread_id"] == thread
    units2 = db.execute("SELECT sum(units) AS u FROM sales_daily WHERE store_id = %s AND date BETWEEN %s AND %s",
                        (2, end - timedelta(days=6), end)).fetchone()["u"]  # fmt: skip
    assert f"{units2:,}" in answer_text(follow)
    state = (await served["viewer"].get(f"/threads/{thread}/state")).json()
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai", "human", "ai"]
    # one checkpoint per question (durability exit), each the state after its answer, which feedback can cite
    history = (await served["viewer"].post(f"/threads/{thread}/history", json={"limit": 10})).json()
    assert [len(h["values"]["messages"]) for h in history] == [4, 2]
    assert history[0]["values"]["understanding"]["intent"] == "sales.summary" and history[0]["next"] == []


async def test_chat_stream_refuses_bad_input_naming_the_field(served: dict[str, Any]) -> None:
    client = served["viewer"]
    for body, field in (({"message": ""}, "message"), ({"message": "hi", "thread_id": "../x"}, "thread_id"),
                        ({"message": "hi", "config": {}}, "config"), ({"message": "x" * 2001}, "message"),
                        ({"message": "hi", "stream_mode": ["debug"]}, "stream_mode")):  # fmt: skip
        response = await client.post("/chat/stream", json=body)
        assert response.status_code == 422 and field in response.text, (body, response.text)
    assert (await httpx.AsyncClient(transport=client._transport, base_url="http://rimas.test").post(
        "/chat/stream", json={"message": "hi"})).status_code == 401  # fmt: skip


async def test_a_plan_is_started_from_the_chat_by_an_operator_only(served: dict[str, Any]) -> None:
    refused = await chat(served["viewer"], "start a plan for store 2")
    assert "needs the operator role" in answer_text(refused)
    assert (await served["viewer"].get("/plans")).json()["items"] == []
    started = await chat(served["operator"], "start a plan for store 2")
    custom = next(data for name, data in started if name == "custom")
    assert "plan_ids" in custom["focus"], (answer_text(started), custom)
    plan_id = custom["focus"]["plan_ids"][0]
    assert plan_id in answer_text(started) and "approver" in answer_text(started)
    for _ in range(120):  # the plan runs in the background until it waits for an approver
        plan = (await served["viewer"].get(f"/plans/{plan_id}")).json()
        if plan.get("status") not in (None, "created", "running"):
            break
        await asyncio.sleep(0.5)
    assert plan["status"] in ("pending_approval", "no_action"), plan
    assert plan["store_id"] == 2
    # the same question answered again (a run executed a second time after a crash) starts no second plan
    state = (await served["operator"].get(f"/threads/{started[0][1]['thread_id']}/state")).json()
    asked = [m for m in state["values"]["messages"] if m["type"] == "human"][-1]
    starter = tool_deps.current().plan_starter
    assert starter is not None
    request = {"store_id": 2, "horizon_days": 14, "items": [{"item_id": 1001, "current_stock": 5}],
               "constraints": {"lead_time_days": 3, "budget_limit": 1000, "max_discount": 0.1}}
    again = await starter(request, {"id": "operator-1", "role": "operator"},
                          f"{started[0][1]['thread_id']}:{asked['id']}")  # fmt: skip
    assert again == plan_id
    runs = (await served["viewer"].get(f"/threads/{plan_id}/runs")).json()
    assert len(runs) == 1, runs


async def test_api_ai_query_answers_in_the_seed_envelope_and_audits(served: dict[str, Any]) -> None:
    viewer, operator, admin = served["viewer"], served["operator"], served["admin"]
    session = f"s-{uuid.uuid4()}"
    body = {"user_id": "U1", "session_id": session, "page": "Sales",
            "ui_payload": {"action": "ask", "question": "What did store 1 sell last week?"}}  # fmt: skip
    response = await viewer.post("/api/ai/query", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["success"] is True and answer["data"]["status"] == "success"
    data = answer["data"]["data"]
    assert data["intent"] == "sales.summary" and data["kind"] == "answer" and "store 1" in data["answer"].lower()
    follow = await viewer.post("/api/ai/query", json={**body, "ui_payload": {"action": "ask",
                                                                              "question": "and store 2?"}})  # fmt: skip
    assert follow.json()["data"]["data"]["thread_id"] == data["thread_id"]
    assert "store 2" in follow.json()["data"]["data"]["answer"].lower()

    task = (await viewer.get(f"/api/ai/task/{answer['task_id']}")).json()["data"]
    assert task["status"] == "completed" and [e["event"] for e in task["events"]] == ["TASK_STARTED", "TASK_COMPLETED"]
    assert task["outputs"]["intent"] == "sales.summary" and task["inputs"]["session_id"] == session
    assert (await operator.get(f"/api/ai/task/{answer['task_id']}")).status_code == 404  # another key's task
    assert (await admin.get(f"/api/ai/task/{answer['task_id']}")).status_code == 200
    audit = (await viewer.get("/api/ai/audit", params={"task_id": answer["task_id"]})).json()["data"]
    assert audit["total"] == 2 and {r["actor"] for r in audit["records"]} == {"viewer-1"}
    assert (await operator.get("/api/ai/audit", params={"task_id": answer["task_id"]})).json()["data"]["total"] == 0

    structured = await viewer.post("/api/ai/query", json={"ui_payload": {"action": "query", "sku": 1002,
                                                                          "store_id": 1}})  # fmt: skip
    assert structured.json()["data"]["data"]["intent"] == "inventory.stock"
    bad = await viewer.post("/api/ai/query", json={"ui_payload": {"action": "reorder"}})
    assert bad.status_code == 422 and bad.json()["success"] is False and "store_id" in bad.json()["error"]["message"]


async def test_rimas_chat_prints_the_streamed_answer_and_its_table(served: dict[str, Any]) -> None:
    out = io.StringIO()
    assert await chat_session(served["viewer"], "top 3 sellers last week", out) == 0
    printed = out.getvalue().splitlines()
    assert printed[0].startswith("Top 3 sellers by units")
    assert printed[3].split() == ["sku", "name", "category", "units", "revenue"] and len(printed) == 8
    asked = iter(["How many units did store 1 sell yesterday?", "and store 2?", ""])
    out = io.StringIO()
    assert await chat_session(served["viewer"], None, out, read=lambda: next(asked)) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Ask a question") and lines[1].startswith("Store 1 sold")
    assert any(line.startswith("Store 2 sold") for line in lines[2:])
