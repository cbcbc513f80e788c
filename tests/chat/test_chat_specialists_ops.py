"""The chat's customer, fulfillment, knowledge and planning specialists on the seeded data: every number they state
is checked against SQL or against the tool's result computed independently; follow-ups work from the answers'
focus; a missing entity gets a question back, an unknown one is named, a failing tool is an error naming it; the
planning specialist hands a request naming the store to the plan starter and writes nothing itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import psycopg
import pytest

from graphs.chat.specialists import customer, fulfillment, knowledge, planning
from graphs.chat.specialists.base import Answer, Ask, count, money, pct
from ml.nlu import Catalog, extract
from tools import customers, risk, sales
from tools.deps import ToolDeps

OPEN = ("processing", "shipped", "delayed")
OPERATOR = {"id": "ops-1", "role": "operator"}


async def make_ask(db: psycopg.Connection[Any], text: str, intent: str, previous: dict[str, Any] | None = None) -> Ask:
    """An understood question: entities extracted against the seeded catalog, the intent given."""
    as_of = await sales.as_of()
    stores = pd.DataFrame(db.execute("SELECT store_id, name, city FROM stores ORDER BY store_id").fetchall())
    products = pd.DataFrame(db.execute("SELECT sku, name, category FROM products ORDER BY sku").fetchall())
    catalog = Catalog.from_frames(stores, products, as_of)
    return Ask(text=text, intent=intent, entities=extract(text, catalog), as_of=as_of, previous=previous or {})


def table_column(reply: Answer, column: str) -> list[Any]:
    assert reply.table is not None
    index = reply.table.columns.index(column)
    return [row[index] for row in reply.table.rows]


def scalar(db: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = db.execute(query, params).fetchone()
    assert row is not None
    return next(iter(row.values()))


# -- customers ----------------------------------------------------------------------------------------------------


async def test_a_customer_profile_states_their_figures_and_how(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    row = db.execute(
        "SELECT c.customer_id, c.name, c.email, c.loyalty_points, count(o.order_id) AS orders, "
        "coalesce(sum(o.order_value) FILTER (WHERE o.payment_status <> 'refunded'), 0) AS spent "
        "FROM customers c JOIN orders o USING (customer_id) GROUP BY c.customer_id "
        "ORDER BY count(o.order_id) DESC, c.customer_id LIMIT 1"
    ).fetchone()
    assert row is not None
    reply = await customer.answer(await make_ask(db, f"Tell me about customer {row['customer_id']}",
                                                 "customer.profile"))  # fmt: skip
    assert reply.kind == "answer" and reply.tools == ["customer_profile"]
    assert row["name"] in reply.text and f"{count(row['orders'])} orders" in reply.text
    assert money(float(row["spent"])) in reply.text and f"{count(row['loyalty_points'])} loyalty points" in reply.text
    assert "How: " in reply.text and row["email"] not in str(reply.to_dict())
    assert reply.focus == {"customer_ids": [row["customer_id"]]}
    follow_up = await customer.answer(await make_ask(db, "and their profile?", "customer.profile", reply.focus))
    assert follow_up.kind == "answer" and follow_up.text == reply.text
    assert (await customer.answer(await make_ask(db, "Show me the customer profile", "customer.profile"))).kind \
        == "clarify"  # fmt: skip
    missing = await customer.answer(await make_ask(db, "Tell me about customer 987654", "customer.profile"))
    assert missing.kind == "unknown" and "987654" in missing.text


async def test_the_most_loyal_customers_are_ranked_by_loyalty_points(deps: ToolDeps,
                                                                     db: psycopg.Connection[Any]) -> None:  # fmt: skip
    reply = await customer.answer(await make_ask(db, "Who are our most loyal customers?", "customer.top"))
    wanted = db.execute("SELECT customer_id, name, loyalty_points FROM customers "
                        "ORDER BY loyalty_points DESC, customer_id LIMIT 5").fetchall()  # fmt: skip
    assert reply.kind == "answer" and reply.tools == ["top_customers"]
    assert table_column(reply, "customer_id") == [w["customer_id"] for w in wanted]
    assert reply.focus["customer_ids"] == [w["customer_id"] for w in wanted]
    for w in wanted:
        assert f"{w['name']} (customer {w['customer_id']}, {count(w['loyalty_points'])} points)" in reply.text
    assert "How: " in reply.text and "loyalty points" in reply.text
    assert reply.table is not None and reply.table.columns[3] == "loyalty_points"
    assert len(set(reply.table.columns)) == len(reply.table.columns)


async def test_the_most_valuable_customers_are_ranked_by_spend(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    reply = await customer.answer(await make_ask(db, "Who are our top 3 most valuable customers?", "customer.top"))
    ranked = await customers.top_customers(by="monetary", limit=3)
    wanted = db.execute("SELECT customer_id, sum(CASE WHEN payment_status = 'refunded' THEN 0 ELSE order_value END) "
                        "AS spent FROM orders GROUP BY customer_id ORDER BY spent DESC, customer_id LIMIT 3"
                        ).fetchall()  # fmt: skip
    assert [r.customer_id for r in ranked] == [w["customer_id"] for w in wanted]
    assert table_column(reply, "customer_id") == [w["customer_id"] for w in wanted]
    assert all(money(float(w["spent"])) in reply.text for w in wanted)
    assert customer.ranking("who orders most frequently?")[0] == "frequency"
    assert customer.ranking("our most loyal shoppers")[0] == "loyalty_points"


async def test_recommendations_carry_each_reason(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    customer_id = scalar(db, "SELECT customer_id FROM orders GROUP BY customer_id ORDER BY count(*) DESC, "
                             "customer_id LIMIT 1")  # fmt: skip
    reply = await customer.answer(await make_ask(db, f"What should we recommend to customer {customer_id}?",
                                                 "customer.recommend"))  # fmt: skip
    wanted = await customers.recommendations(customer_id, k=5)
    assert wanted and reply.kind == "answer" and reply.tools == ["recommendations"]
    assert table_column(reply, "sku") == [r.sku for r in wanted] == reply.focus["skus"]
    assert all(r.reason in reply.text for r in wanted) and "How: " in reply.text
    unknown = await customer.answer(await make_ask(db, "recommend something to customer 987654", "customer.recommend"))
    assert unknown.kind == "unknown" and "987654" in unknown.text


# -- fulfillment --------------------------------------------------------------------------------------------------


async def test_why_an_open_order_is_at_risk(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    order = db.execute("SELECT order_id, order_status, promised_delivery_date FROM orders "
                       "WHERE order_status = ANY(%s) ORDER BY order_id LIMIT 1", (list(OPEN),)).fetchone()  # fmt: skip
    assert order is not None
    scored = {r.order_id: r for r in await risk.open_order_risks()}[order["order_id"]]
    reply = await fulfillment.answer(await make_ask(db, f"Why is order {order['order_id']} at risk?",
                                                    "fulfillment.order_risk"))  # fmt: skip
    assert reply.kind == "answer" and reply.tools == ["order_risk", "likely_late"]
    assert f"P(late) {pct(100 * scored.delay_probability)}, severity {scored.severity}" in reply.text
    assert f"status {order['order_status']}" in reply.text and str(order["promised_delivery_date"]) in reply.text
    assert scored.factors and all(f in reply.text for f in scored.factors)
    assert reply.focus["order_ids"] == [order["order_id"]]
    assert scalar(db, "SELECT count(*) FROM predictions") == 0  # answering wrote nothing
    again = await fulfillment.answer(await make_ask(db, "why?", "fulfillment.order_risk", reply.focus))
    assert again.text == reply.text
    assert (await fulfillment.answer(await make_ask(db, "why is that order late?", "fulfillment.order_risk"))).kind \
        == "clarify"  # fmt: skip
    missing = await fulfillment.answer(await make_ask(db, "Why is order ORD-999999 at risk?",
                                                      "fulfillment.order_risk"))  # fmt: skip
    assert missing.kind == "unknown" and "ORD-999999" in missing.text


async def test_a_delivered_order_has_no_delay_score(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    order_id = scalar(db, "SELECT order_id FROM orders WHERE order_status = 'delivered' ORDER BY order_id LIMIT 1")
    reply = await fulfillment.answer(await make_ask(db, f"Is order {order_id} at risk?", "fulfillment.order_risk"))
    assert reply.kind == "answer" and "has no delay score" in reply.text and reply.tools == ["order_risk"]


async def test_the_orders_likely_late_from_warehouse_f(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    risks = await risk.open_order_risks()
    late = sorted((r for r in risks if r.warehouse_block == "F" and r.delay_probability > 0.5),
                  key=lambda r: (-r.delay_probability, r.order_id))  # fmt: skip
    assert late, "the seed should have open orders in block F likely late"
    reply = await fulfillment.answer(await make_ask(db, "Which orders from warehouse F are likely late?",
                                                    "fulfillment.late_orders"))  # fmt: skip
    assert reply.kind == "answer" and reply.tools == ["likely_late"]
    noun = "open order" if len(late) == 1 else "open orders"
    assert reply.text.startswith(f"{count(len(late))} {noun} from warehouse F ")
    assert "(P(late) > 50 %)" in reply.text and f"{late[0].order_id} ({pct(100 * late[0].delay_probability)}" \
        in reply.text  # fmt: skip
    listed = table_column(reply, "order_id")
    assert listed == [r.order_id for r in late[:10]] == reply.focus["order_ids"]
    assert set(table_column(reply, "warehouse_block")) == {"F"}
    why = await fulfillment.answer(await make_ask(db, "why?", "fulfillment.order_risk", reply.focus))
    assert why.focus["order_ids"] == [late[0].order_id] and pct(100 * late[0].delay_probability) in why.text
    by_road = await fulfillment.answer(await make_ask(db, "Which orders from warehouse F by road are likely late?",
                                                      "fulfillment.late_orders"))  # fmt: skip
    road = sum(1 for r in late if r.mode_of_shipment == "Road")
    assert by_road.text.startswith(f"{count(road)} open order") or (road == 0 and by_road.text.startswith("No "))


@pytest.fixture
def scored_orders(deps: ToolDeps, db: psycopg.Connection[Any]) -> Iterator[list[str]]:
    """Twelve seeded orders as the scoring pipeline records them (inputs and predictions); removed afterwards."""
    rows = db.execute("SELECT order_id FROM orders ORDER BY order_id LIMIT 12").fetchall()
    ids = [r["order_id"] for r in rows]
    db.execute("INSERT INTO order_inputs (order_id, customer_ref, data, source, known_order) "
               "SELECT order_id, customer_id::text, to_jsonb(o), 'api', true FROM orders o WHERE order_id = ANY(%s)",
               (ids,))  # fmt: skip
    for i, order_id in enumerate(ids):
        p = round(0.08 * i, 2)
        severity = "critical" if p > 0.7 else "warning" if p > 0.5 else "info" if p > 0.3 else "none"
        db.execute("INSERT INTO predictions (order_id, source, delay_probability, severity, model_version, features) "
                   "VALUES (%s, 'api', %s, %s, 'test', '{}')", (order_id, p, severity))  # fmt: skip
    try:
        yield ids
    finally:
        db.execute("DELETE FROM predictions WHERE order_id = ANY(%s)", (ids,))
        db.execute("DELETE FROM order_inputs WHERE order_id = ANY(%s)", (ids,))


async def test_the_kpis_state_the_dashboards_rates(scored_orders: list[str], deps: ToolDeps,
                                                   db: psycopg.Connection[Any]) -> None:  # fmt: skip
    scored = pd.DataFrame(db.execute(
        "SELECT p.delay_probability AS p, p.severity, oi.warehouse_block, oi.mode_of_shipment, oi.product_importance "
        "FROM predictions p JOIN order_inputs oi USING (order_id) WHERE order_id = ANY(%s)", (scored_orders,)
    ).fetchall())  # fmt: skip
    on_time = round(100.0 * float((scored["p"] <= 0.5).mean()), 2)
    means = [float(scored.groupby(d)["p"].mean().max()) for d in ("warehouse_block", "mode_of_shipment",
                                                                   "product_importance")]  # fmt: skip
    reply = await fulfillment.answer(await make_ask(db, "How are our fulfillment KPIs?", "fulfillment.kpis"))
    assert reply.kind == "answer" and reply.tools == ["kpis"]
    assert f"{count(len(scored))} orders were scored" in reply.text
    target = deps.policy.kpis.on_time_target_pct
    versus = "below" if on_time < target else "at or above"
    assert f"Predicted on-time rate: {pct(on_time)}, {versus} the target of {pct(target)}" in reply.text
    assert f"High-risk (critical) orders: {count((scored['severity'] == 'critical').sum())}" in reply.text
    assert f"mean P(late) {pct(100 * round(max(means), 4))}" in reply.text  # the riskiest segment is named
    assert sum(table_column(reply, "orders")) == 3 * len(scored)  # each order in one segment of each dimension


async def test_the_kpis_without_scored_orders(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    reply = await fulfillment.answer(await make_ask(db, "How are our fulfillment KPIs?", "fulfillment.kpis"))
    assert reply.kind == "answer" and "no orders were scored" in reply.text


@pytest.fixture
def some_deviations(deps: ToolDeps, db: psycopg.Connection[Any]) -> Iterator[list[str]]:
    """Three deviations (one critical, two warnings; the newest a warning); removed afterwards."""
    ids = [r["order_id"] for r in db.execute("SELECT order_id FROM orders ORDER BY order_id DESC LIMIT 3").fetchall()]
    for age, (order_id, severity) in enumerate(zip(ids, ("warning", "critical", "warning"), strict=True)):
        db.execute("INSERT INTO deviations (deviation_id, order_id, severity, status, created_at) "
                   "VALUES (%s, %s, %s, 'open', now() - make_interval(hours => %s))",
                   (uuid.uuid4(), order_id, severity, age))  # fmt: skip
    try:
        yield ids
    finally:
        db.execute("DELETE FROM deviations WHERE order_id = ANY(%s)", (ids,))


async def test_deviations_are_counted_by_severity(some_deviations: list[str], db: psycopg.Connection[Any]) -> None:
    reply = await fulfillment.answer(await make_ask(db, "Show me the deviations", "fulfillment.deviations"))
    assert reply.kind == "answer" and reply.tools == ["deviations"]
    assert reply.text.startswith("3 deviations on record: 1 critical and 2 warning.")
    assert table_column(reply, "order_id") == some_deviations == reply.focus["order_ids"]  # newest first
    critical = await fulfillment.answer(await make_ask(db, "Which critical deviations are open?",
                                                       "fulfillment.deviations"))  # fmt: skip
    assert critical.text.startswith("1 open critical deviation on record: 1 critical.")
    assert table_column(critical, "order_id") == [some_deviations[1]]


# -- knowledge ----------------------------------------------------------------------------------------------------


async def test_a_policy_answer_cites_its_passages(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    reply = await knowledge.answer(await make_ask(db, "What's our refund policy for a parcel a week late?",
                                                  "knowledge.policy"))  # fmt: skip
    assert reply.kind == "answer" and reply.tools == ["search_policies"]
    assert reply.citations and all(set(c) == {"id", "title", "section", "text"} for c in reply.citations)
    assert all(f"[{c['id']}]" in reply.text for c in reply.citations)
    tier = deps.policy.refunds.tier_for(7)
    assert tier is not None and f"{pct(tier.refund_pct, 0)} of the amount paid" in reply.text
    assert "[policy:refunds#compensation-tiers]" in reply.text
    assert any(c["id"] == "policy:refunds#compensation-tiers" for c in reply.citations)
    assert knowledge.days_late("it came 3 days late") == 3 and knowledge.days_late("two weeks late") == 14


async def test_without_a_knowledge_base_the_policy_is_not_available(
    deps: ToolDeps, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps, "knowledge", None)
    reply = await knowledge.answer(await make_ask(db, "What is the returns window?", "knowledge.policy"))
    assert reply.kind == "error" and "not available" in reply.text and not reply.citations


# -- planning -----------------------------------------------------------------------------------------------------


async def test_starting_a_plan_hands_the_store_to_the_plan_starter(
    deps: ToolDeps, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []
    plan_id = str(uuid.uuid4())

    async def fake_starter(request: dict[str, Any], principal: dict[str, Any], key: str | None) -> str:
        calls.append((request, principal))
        return plan_id

    monkeypatch.setattr(deps, "plan_starter", fake_starter)
    plans_before = scalar(db, "SELECT count(*) FROM plans")
    reply = await planning.answer(await make_ask(db, "Start a plan for store 3", "planning.start",
                                                 {"_principal": OPERATOR}))  # fmt: skip
    assert reply.kind == "answer" and reply.tools == ["start_plan"] and len(calls) == 1
    request, principal = calls[0]
    stocked = db.execute("SELECT sku, on_hand FROM inventory WHERE store_id = 3 ORDER BY sku").fetchall()
    assert request["store_id"] == 3 and principal == OPERATOR
    assert request["items"] == [{"item_id": s["sku"], "current_stock": s["on_hand"]} for s in stocked]
    assert plan_id in reply.text and f"GET /plans/{plan_id}" in reply.text and "approv" in reply.text
    assert reply.focus == {"plan_ids": [plan_id], "store_ids": [3]}
    assert scalar(db, "SELECT count(*) FROM plans") == plans_before  # the specialist wrote nothing

    viewer = await planning.answer(await make_ask(db, "Start a plan for store 3", "planning.start"))
    assert viewer.kind == "refusal" and len(calls) == 1
    nowhere = await planning.answer(await make_ask(db, "Start a plan", "planning.start", {"_principal": OPERATOR}))
    assert nowhere.kind == "clarify" and len(calls) == 1
    monkeypatch.setattr(deps, "plan_starter", None)
    cannot = await planning.answer(await make_ask(db, "Start a plan for store 3", "planning.start",
                                                  {"_principal": OPERATOR}))  # fmt: skip
    assert cannot.kind == "error" and "cannot be started" in cannot.text


async def test_plan_status_reads_the_plans_index(deps: ToolDeps, db: psycopg.Connection[Any]) -> None:
    plan_id = str(uuid.uuid4())
    db.execute("INSERT INTO plans (plan_id, store_id, horizon_days, status, request, created_by, total_cost, "
               "line_count) VALUES (%s, 2, 14, 'pending_approval', '{}', 'ops-1', 1234.5, 4)", (plan_id,))  # fmt: skip
    try:
        reply = await planning.answer(await make_ask(db, f"What is the status of plan {plan_id}?", "planning.status"))
        assert reply.kind == "answer" and reply.tools == ["plan_status"] and reply.focus["plan_ids"] == [plan_id]
        assert "pending approval" in reply.text and money(1234.5) in reply.text and "4 lines" in reply.text
        by_store = await planning.answer(await make_ask(db, "Any plans for store 2?", "planning.status"))
        assert table_column(by_store, "plan_id") == [plan_id]
    finally:
        db.execute("DELETE FROM plans WHERE plan_id = %s", (plan_id,))
    gone = await planning.answer(await make_ask(db, f"What is the status of plan {plan_id}?", "planning.status"))
    assert gone.kind == "unknown" and plan_id in gone.text


# -- failures -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "module", "intent", "text", "tool"), [
    ("top_customers", customers, "customer.top", "Who are our most loyal customers?", "top_customers"),
    ("likely_late", risk, "fulfillment.late_orders", "Which orders from warehouse F are likely late?", "likely_late"),
    ("dashboard", fulfillment.kpis, "fulfillment.kpis", "How are our KPIs?", "kpis"),
    ("search_policies", knowledge.knowledge, "knowledge.policy", "What is the refund policy?", "search_policies"),
    ("plan_rows", planning.planning, "planning.status", "What is the status of the plans?", "plan_status"),
])  # fmt: skip
async def test_a_failing_tool_is_an_error_naming_it(target: str, module: Any, intent: str, text: str, tool: str,
                                                     deps: ToolDeps, db: psycopg.Connection[Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(module, target, broken)
    specialist = {"customer": customer, "fulfillment": fulfillment, "knowledge": knowledge, "planning": planning}
    reply = await specialist[intent.split(".")[0]].answer(await make_ask(db, text, intent))
    assert reply.kind == "error" and f"the {tool} tool failed (database went away)" in reply.text
    assert reply.tools == [tool]
