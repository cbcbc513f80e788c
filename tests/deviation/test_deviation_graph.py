"""The deviation graph end to end in process, on the real database, Postgres saver and knowledge base.

A critical, paid order a week late: the supervisor sends shipment, payment and customer; the shipment upgrade
and the customer message are within the automation role and run at once, attributed to their agents; the
refund (half of what was paid, above the operator's limit) waits for a person in the approval schema. What the
approver decides is what happens: approve writes exactly one refund row in the approver's name, reject writes
none and says so, an edit is re-checked and may change only the amount. The deviation ends resolved and the
case can be found by the next similar deviation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from langgraph.types import Command

from tools.deps import ToolDeps
from tools.knowledge import search_cases

APPROVER = {"id": "approver-1", "role": "approver"}


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def _decision(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "actor": APPROVER, "decided_at": "2026-12-04T10:00:00+00:00", **extra}


def _rows(db: psycopg.Connection[Any], table: str, order_id: str) -> list[dict[str, Any]]:
    return list(db.execute(f"SELECT * FROM {table} WHERE order_id = %s", (order_id,)).fetchall())


async def _until_approval(graph: Any, ids: dict[str, Any], thread_id: str) -> dict[str, Any]:
    await graph.ainvoke({"deviation_id": ids["deviation_id"]}, _config(thread_id))
    snapshot = await graph.aget_state(_config(thread_id))
    assert snapshot.next == ("approval",)
    [pending] = snapshot.interrupts
    return {"values": snapshot.values, "request": pending.value}


async def test_a_refund_over_the_automation_limit_waits_for_an_approver_then_runs_once(
    graph: Any, deviation: Callable[..., dict[str, Any]], db: psycopg.Connection[Any], deps: ToolDeps
) -> None:
    ids = deviation()
    paused = await _until_approval(graph, ids, "dev-approve")
    values, request = paused["values"], paused["request"]

    assert values["plan"]["decided_by"] == "rules"
    assert values["plan"]["specialists"] == ["shipment", "customer", "payment"]
    assert values["policy_passages"] and values["severity"] == "critical"
    assert [p["name"] for p in values["proposals"]] == ["upgrade_shipping_mode", "issue_refund", "send_notification"]
    refund = next(p for p in values["proposals"] if p["name"] == "issue_refund")
    assert refund["amount"] == 200.0  # the major tier: 50 % of the 400 USD paid
    [asked] = request["action_requests"]
    assert (asked["name"], asked["amount"], asked["required_role"]) == ("issue_refund", 200.0, "approver")
    assert asked["policy_action"] == "refund" and asked["citations"]
    assert db.execute("SELECT status FROM deviations WHERE deviation_id = %s", (ids["deviation_id"],)).fetchone()[
        "status"] == "awaiting_approval"  # fmt: skip
    assert _rows(db, "refunds", ids["order_id"]) == []  # nothing paid before the decision

    final = await graph.ainvoke(Command(resume={"decisions": [_decision("approve")]}), _config("dev-approve"))
    [row] = _rows(db, "refunds", ids["order_id"])
    assert (float(row["amount"]), row["actor"], row["thread_id"]) == (200.0, "approver-1", "dev-approve")
    assert row["idempotency_key"] == "dev-approve:payment:issue_refund:1"
    outcomes = {o["name"]: o for o in final["outcomes"]}
    assert outcomes["issue_refund"]["decided_by"] == "approver-1"
    assert {o["outcome"] for o in outcomes.values()} == {"executed"}
    [upgrade] = _rows(db, "shipment_changes", ids["order_id"])
    assert upgrade["actor"] == "agent:shipment"
    stored = db.execute("SELECT status, resolution, resolved_by FROM deviations WHERE deviation_id = %s",
                        (ids["deviation_id"],)).fetchone()  # fmt: skip
    assert stored["status"] == "resolved" and stored["resolved_by"] == "approver-1"
    assert stored["resolution"]["summary"] == final["resolution"]["summary"]
    assert "issue refund 200.00 USD: executed by approver-1" in stored["resolution"]["summary"]

    # executing again (as a re-executed run would, from the checkpoint after the decision) writes nothing twice
    await graph.aupdate_state(_config("dev-approve"), None, as_node="approval")
    await graph.ainvoke(None, _config("dev-approve"))
    assert len(_rows(db, "refunds", ids["order_id"])) == 1
    assert len(_rows(db, "shipment_changes", ids["order_id"])) == 1

    # the next similar deviation finds this case
    found = await search_cases(f"critical delay warehouse C Road high importance order {ids['order_id']}", k=3)
    assert any(ids["deviation_id"] in p.citation for p in found)


async def test_a_rejected_refund_is_not_paid_and_the_resolution_says_so(
    graph: Any, deviation: Callable[..., dict[str, Any]], db: psycopg.Connection[Any]
) -> None:
    ids = deviation()
    await _until_approval(graph, ids, "dev-reject")
    reject = _decision("reject", message="customer already refunded by phone")
    final = await graph.ainvoke(Command(resume={"decisions": [reject]}), _config("dev-reject"))
    assert _rows(db, "refunds", ids["order_id"]) == []
    refund = next(o for o in final["outcomes"] if o["name"] == "issue_refund")
    assert (refund["outcome"], refund["why"], refund["decided_by"]) == (
        "rejected", "customer already refunded by phone", "approver-1")  # fmt: skip
    assert "issue refund 200.00 USD: rejected by approver-1" in final["resolution"]["summary"]


async def test_an_edit_is_checked_again_and_may_change_only_the_amount(
    graph: Any, deviation: Callable[..., dict[str, Any]], db: psycopg.Connection[Any]
) -> None:
    lowered = deviation()
    await _until_approval(graph, lowered, "dev-edit")
    edited = {"name": "issue_refund", "args": {"order_id": lowered["order_id"], "amount": 120.0, "tier": "major"}}
    await graph.ainvoke(Command(resume={"decisions": [_decision("edit", edited_action=edited)]}), _config("dev-edit"))
    [row] = _rows(db, "refunds", lowered["order_id"])
    assert float(row["amount"]) == 120.0 and row["actor"] == "approver-1"

    hostile = deviation()
    await _until_approval(graph, hostile, "dev-edit-hostile")
    moved = {"name": "issue_refund", "args": {"order_id": lowered["order_id"], "amount": 10.0, "tier": "major"}}
    final = await graph.ainvoke(Command(resume={"decisions": [_decision("edit", edited_action=moved)]}),
                                _config("dev-edit-hostile"))  # fmt: skip
    assert _rows(db, "refunds", hostile["order_id"]) == []
    assert len(_rows(db, "refunds", lowered["order_id"])) == 1  # the other order was not touched
    refund = next(o for o in final["outcomes"] if o["name"] == "issue_refund")
    assert refund["outcome"] == "refused" and "order_id" in refund["why"]

    too_much = deviation()
    await _until_approval(graph, too_much, "dev-edit-over")
    over = {"name": "issue_refund", "args": {"order_id": too_much["order_id"], "amount": 390.0, "tier": "major"}}
    final = await graph.ainvoke(Command(resume={"decisions": [_decision("edit", edited_action=over)]}),
                                _config("dev-edit-over"))  # fmt: skip
    assert _rows(db, "refunds", too_much["order_id"]) == []
    refund = next(o for o in final["outcomes"] if o["name"] == "issue_refund")
    assert refund["outcome"] == "refused" and refund["why"].startswith("as edited:")


async def test_independent_specialists_run_in_one_superstep_and_the_customer_after_shipment(
    graph: Any, deviation: Callable[..., dict[str, Any]]
) -> None:
    ids = deviation()
    await graph.ainvoke({"deviation_id": ids["deviation_id"]}, _config("dev-waves"))
    history = [s async for s in graph.aget_state_history(_config("dev-waves"))][::-1]
    specialists = {"shipment", "customer", "payment", "escalation"}
    waves = [names for s in history if (names := {t.name for t in s.tasks} & specialists)]
    assert waves == [{"shipment", "payment"}, {"customer"}]


async def test_the_customer_is_not_told_about_an_upgrade_that_a_person_rejected(
    graph: Any, deviation: Callable[..., dict[str, Any]], db: psycopg.Connection[Any]
) -> None:
    ids = deviation(weight_in_gms=10000)  # Road -> Flight for 10 kg: 8 + 3.5/kg = 43 USD, over the operator's 25
    paused = await _until_approval(graph, ids, "dev-no-upgrade")
    assert [a["name"] for a in paused["request"]["action_requests"]] == ["upgrade_shipping_mode", "issue_refund"]
    decisions = [_decision("reject", message="no flights this week"), _decision("approve")]
    final = await graph.ainvoke(Command(resume={"decisions": decisions}), _config("dev-no-upgrade"))
    outcomes = {o["name"]: o for o in final["outcomes"]}
    assert outcomes["upgrade_shipping_mode"]["outcome"] == "rejected"
    assert outcomes["send_notification"]["outcome"] == "skipped"
    assert "shipment:upgrade_shipping_mode:1" in outcomes["send_notification"]["why"]
    assert _rows(db, "notifications", ids["order_id"]) == [] and _rows(db, "shipment_changes", ids["order_id"]) == []
    assert len(_rows(db, "refunds", ids["order_id"])) == 1
