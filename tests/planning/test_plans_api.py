"""The RIMAS plan contract served: the seed's example request works as written, the plan waits in ``GET
/approvals``, an approval with one edited line writes exactly those lines in the approver's name, approving twice or
after a rejection is 409, the events match the checkpoint history, and bad requests are refused naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

SKUS = list(range(1001, 1009))

Clients = dict[str, httpx.AsyncClient]
SEED_EXAMPLE = {
    "store_id": 1, "horizon_days": 14,
    "constraints": {"lead_time_days": 3, "budget_limit": 200000, "max_discount": 0.15},
    "items": [{"item_id": 1001, "current_stock": 120}, {"item_id": 1002, "current_stock": 30}],
}  # fmt: skip


def every_item(**constraints: Any) -> dict[str, Any]:
    stocks = (0, 5, 400, 20, 3, 900, 40, 10)
    return {"store_id": 2, "horizon_days": 14, "items": [{"item_id": s, "current_stock": c} for s, c in zip(
        SKUS, stocks, strict=True)], "constraints": {"lead_time_days": 3, "budget_limit": 50_000, "max_discount": 0.3,
                                                     **constraints}}  # fmt: skip


async def test_the_seed_example_request_works_as_written(served: tuple[Any, Clients]) -> None:
    _, http = served
    made = await http["operator"].post("/plans", json=SEED_EXAMPLE)
    assert made.status_code == 201, made.text
    plan = made.json()
    assert plan["status"] in ("pending_approval", "no_action")
    assert [r["item_id"] for r in plan["recommendations"]] == [1001, 1002]
    for r in plan["recommendations"]:
        assert set(r) >= {"item_id", "recommended_order_qty", "recommended_discount", "confidence", "rationale"}
        assert r["rationale"] and 0 <= r["confidence"] <= 1
    assert plan["metadata"]["model_version"] and plan["metadata"]["trace_id"] and plan["metadata"]["generated_at"]
    assert made.headers["location"] == f"/plans/{plan['plan_id']}"
    again = (await http["viewer"].get(f"/plans/{plan['plan_id']}")).json()
    assert again["recommendations"] == plan["recommendations"] and again["metadata"] == plan["metadata"]


async def test_approve_one_edited_line_then_no_second_approval(
    served: tuple[Any, Clients], db: psycopg.Connection[Any]
) -> None:
    _, http = served
    plan = (await http["operator"].post("/plans", json=every_item())).json()
    plan_id = plan["plan_id"]
    assert plan["status"] == "pending_approval"
    inbox = (await http["viewer"].get("/approvals", params={"assistant_id": "planning"})).json()["items"]
    mine = [item for item in inbox if item["thread_id"] == plan_id]
    assert len(mine) == 1 and mine[0]["action_requests"][0]["required_role"] in ("approver", "admin")
    ordered = [r for r in plan["recommendations"] if r["recommended_order_qty"] > 0]
    target = ordered[0]
    operator = await http["operator"].post(f"/plans/{plan_id}/approve", json={})
    assert operator.status_code == 403
    bad = await http["approver"].post(f"/plans/{plan_id}/approve",
                                      json={"edits": [{"item_id": 4242, "order_qty": 3}]})  # fmt: skip
    assert bad.status_code == 422 and "edits[0].item_id" in bad.json()["detail"]
    huge = {"edits": [{"item_id": target["item_id"], "order_qty": 10**6}]}
    over = await http["approver"].post(f"/plans/{plan_id}/approve", json=huge)
    assert over.status_code == 422 and "edits[0].order_qty" in over.json()["detail"]
    approved = await http["approver"].post(f"/plans/{plan_id}/approve", json={
        "edits": [{"item_id": target["item_id"], "order_qty": 4}], "comment": "count says 4 will do"})  # fmt: skip
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved" and body["decided_by"] == "approver-1"
    assert body["comment"] == "count says 4 will do"
    rows = db.execute("SELECT sku, quantity, actor FROM purchase_orders WHERE thread_id = %s ORDER BY sku",
                      (plan_id,)).fetchall()  # fmt: skip
    wanted = sorted((r["item_id"], 4 if r is target else r["recommended_order_qty"]) for r in ordered)
    assert [(r["sku"], r["quantity"]) for r in rows] == wanted
    assert {r["actor"] for r in rows} == {"approver-1"}
    twice = await http["approver"].post(f"/plans/{plan_id}/approve", json={})
    assert twice.status_code == 409 and "already approved" in twice.json()["detail"]
    assert db.execute("SELECT count(*) AS n FROM purchase_orders WHERE thread_id = %s", (plan_id,)).fetchone()[
        "n"] == len(rows)  # fmt: skip

    events = (await http["viewer"].get(f"/plans/{plan_id}/events")).json()["events"]
    kinds = [e["event_type"] for e in events]
    assert kinds[:2] == ["created", "data_analysis"]
    assert set(kinds[2:4]) == {"inventory_analysis", "marketing_analysis"}
    assert kinds[4:] == ["supervisor_decision", "reflection", "final_decision", "approved", "finalized"]
    decision = events[kinds.index("approved")]
    assert decision["actor"] == "approver-1 (approver)" and decision["payload"]["comment"] == "count says 4 will do"
    history = (await http["viewer"].get(f"/threads/{plan_id}/history", params={"limit": 100})).json()
    steps = {e["checkpoint_id"] for e in events}
    assert steps <= {h["checkpoint"]["checkpoint_id"] for h in history}
    nodes = {t["name"] for h in history for t in h["tasks"]}
    assert {"demand_analyst", "inventory_planner", "marketing_planner", "consolidate", "reflection"} <= nodes
    listed = (await http["viewer"].get("/plans", params={"status": "approved"})).json()
    assert plan_id in [p["plan_id"] for p in listed["items"]]


async def test_a_rejected_plan_cannot_be_approved(served: tuple[Any, Clients], db: psycopg.Connection[Any]) -> None:
    _, http = served
    plan_id = (await http["operator"].post("/plans", json=every_item())).json()["plan_id"]
    rejected = await http["approver"].post(f"/plans/{plan_id}/reject", json={"reason": "stock count pending"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    late = await http["admin"].post(f"/plans/{plan_id}/approve", json={})
    assert late.status_code == 409 and "rejected" in late.json()["detail"]
    assert db.execute("SELECT count(*) AS n FROM purchase_orders WHERE thread_id = %s", (plan_id,)).fetchone()[
        "n"] == 0  # fmt: skip
    events = (await http["viewer"].get(f"/plans/{plan_id}/events")).json()["events"]
    assert events[-2]["event_type"] == "rejected" and events[-2]["payload"]["comment"] == "stock count pending"


async def test_bad_requests_name_the_field(served: tuple[Any, Clients]) -> None:
    _, http = served
    cases = [
        ({**SEED_EXAMPLE, "store_id": 99}, 404, "store_id"),
        ({**SEED_EXAMPLE, "items": [{"item_id": 4242, "current_stock": 1}]}, 422, "items[0].item_id"),
        ({**SEED_EXAMPLE, "horizon_days": "14"}, 422, "horizon_days"),
        ({**SEED_EXAMPLE, "horizon_days": 55}, 422, "horizon_days"),  # + lead time 3 > 56
        ({**SEED_EXAMPLE, "constraints": {**SEED_EXAMPLE["constraints"], "max_discount": 1.5}}, 422, "max_discount"),
        ({**SEED_EXAMPLE, "constraints": {**SEED_EXAMPLE["constraints"], "budget_limit": -1}}, 422, "budget_limit"),
        ({**SEED_EXAMPLE, "items": []}, 422, "items"),
        ({**SEED_EXAMPLE, "items": [{"item_id": 1001, "current_stock": 1}] * 2}, 422, "item_id"),
        ({**SEED_EXAMPLE, "items": [{"item_id": 1001, "current_stock": -3}]}, 422, "current_stock"),
        ({**SEED_EXAMPLE, "owner": "me"}, 422, "owner"),
    ]
    for body, status, field in cases:
        answer = await http["operator"].post("/plans", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert field in answer.text, (field, answer.text)
    assert (await http["viewer"].post("/plans", json=SEED_EXAMPLE)).status_code == 403
    assert (await http["viewer"].get("/plans/not-a-plan")).status_code == 422
    assert (await http["viewer"].get("/plans/00000000-0000-0000-0000-000000000000")).status_code == 404
    assert (await http["viewer"].get("/plans", params={"status": "lost"})).status_code == 422
