"""The deviation workflow served: threads started through the run queue (once per deviation, even when asked twice
or concurrently), the refund waiting in ``GET /approvals`` with what a person needs to decide, the approver
deciding through the decision endpoint, and one refund row in the approver's name afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from server.app import create_app
from server.deviation_starter import start_deviation_threads, thread_id_for

REPO = Path(__file__).resolve().parents[2]
KEYS = {"viewer": "view-key", "operator": "op-key", "approver": "appr-key", "admin": "admin-key"}
API_KEYS = ",".join(f"{role}-1:{key}:{role}" for role, key in KEYS.items())


@pytest.fixture
async def served(settings_factory: Callable[..., Any], database_url: str) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    settings = settings_factory(database_url=database_url, seed_on_start=False, train_models_on_start=False,
                                api_keys=API_KEYS, langgraph_config=REPO / "langgraph.json")  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients = {role: httpx.AsyncClient(transport=transport, base_url="http://rimas.test",
                                           headers={"x-api-key": key}) for role, key in KEYS.items()}  # fmt: skip
        try:
            yield app, clients
        finally:
            for client in clients.values():
                await client.aclose()


async def _until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := await check()):
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)
    return found


async def test_a_started_deviation_waits_for_its_approver_and_pays_once(
    served: tuple[Any, dict[str, httpx.AsyncClient]], deviation: Callable[..., dict[str, Any]],
    db: psycopg.Connection[Any],
) -> None:  # fmt: skip
    app, http = served
    runtime = app.state.resources.runtime
    ids = deviation()
    twice = await asyncio.gather(*(start_deviation_threads(runtime, [ids["deviation_id"]], actor="system:auto-start")
                                   for _ in range(3)))  # fmt: skip
    assert sorted(len(started) for started in twice) == [0, 0, 1]  # one thread, whoever asked first
    thread_id = thread_id_for(ids["deviation_id"])
    assert await start_deviation_threads(runtime, [ids["deviation_id"]], actor="operator-1") == []

    async def waiting() -> Any:
        items = (await http["viewer"].get("/approvals", params={"thread_id": thread_id})).json()["items"]
        return items[0] if items else None

    item = await _until(waiting)
    [asked] = item["action_requests"]
    assert (asked["name"], asked["amount"], asked["required_role"]) == ("issue_refund", 200.0, "approver")
    assert db.execute("SELECT status, thread_id FROM deviations WHERE deviation_id = %s",
                      (ids["deviation_id"],)).fetchone() == {"status": "awaiting_approval", "thread_id": thread_id}
    runs = (await http["viewer"].get(f"/threads/{thread_id}/runs")).json()
    assert [r["metadata"].get("started_by") for r in runs] == ["system:auto-start"]

    refused = await http["operator"].post(f"/approvals/{thread_id}/decision", json={"decisions": [{"type": "approve"}]})
    assert refused.status_code == 403  # an operator may not approve a 200 USD refund
    decided = await http["approver"].post(f"/approvals/{thread_id}/decision",
                                          json={"decisions": [{"type": "approve", "message": "late a week"}]})
    assert decided.status_code == 200, decided.text
    refunds = db.execute("SELECT amount, actor FROM refunds WHERE order_id = %s", (ids["order_id"],)).fetchall()
    assert [(float(r["amount"]), r["actor"]) for r in refunds] == [(200.0, "approver-1")]
    row = db.execute("SELECT status, resolved_by, resolution FROM deviations WHERE deviation_id = %s",
                     (ids["deviation_id"],)).fetchone()  # fmt: skip
    assert (row["status"], row["resolved_by"]) == ("resolved", "approver-1")
    assert row["resolution"]["thread_id"] == thread_id
