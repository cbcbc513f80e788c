"""The deviation workflow's evaluation: the labelled suite through the real graph on this module's database (the rules
route it well enough, and nothing the graph executes breaks the policy), a wrong label and a policy violation fail
it, the LLM supervisor's routing is what gets scored when a model is configured (over real ``ChatOpenAI`` against
the scripted server), and ``rimas eval deviation`` prints the report and exits by it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from langchain_openai import ChatOpenAI
from scripted_llm import scripted_llm, tools

from graphs.deviation.evaluation import (
    MIN_ACCURACY,
    SCENARIO_TABLES,
    SCENARIOS_PATH,
    EvaluationReport,
    Expected,
    Scenario,
    ScenarioError,
    load_scenarios,
    measure,
    run_evaluation,
)
from rag.policy import get_policy
from rag.service import KnowledgeBase
from tools import deps as tool_deps
from tools.deps import ToolDeps
from tools.orders import CustomerHistory, OrderFacts

REPO = Path(__file__).resolve().parents[2]


def by_id(*ids: str) -> list[Scenario]:
    scenarios = {s.id: s for s in load_scenarios()}
    return [scenarios[i] for i in ids]


def leftovers(db: psycopg.Connection[Any]) -> dict[str, int]:
    counts = {t: db.execute(f"SELECT count(*) AS n FROM {t} WHERE starts_with(order_id, 'EVAL-')").fetchone()["n"]
              for t in SCENARIO_TABLES}  # fmt: skip
    return {t: n for t, n in counts.items() if n}


def test_the_suite_covers_what_the_policy_distinguishes() -> None:
    scenarios = load_scenarios()
    assert len(scenarios) >= 40
    assert {s.severity for s in scenarios} == {"info", "warning", "critical"}
    assert {s.order.order_status for s in scenarios} >= {"processing", "shipped", "delayed", "delivered"}
    assert {s.order.payment_status for s in scenarios} == {"paid", "pending", "refunded"}
    assert {s.expect.approval for s in scenarios} == {None, "approver", "admin"}
    assert {s.order.mode_of_shipment for s in scenarios} == {"Ship", "Road", "Flight"}
    refunds = get_policy().refunds
    tiers = {refunds.tier_for(s.order.days_late) for s in scenarios if s.order.days_late}
    assert {t.name for t in tiers if t} == {t.name for t in refunds.tiers}
    assert any(s.order.discount_offered > refunds.high_discount.discount_over_pct for s in scenarios)
    assert any(s.history.apology_hours_ago is not None for s in scenarios)
    assert any(s.history.previous_compensation is not None for s in scenarios)
    assert any(s.history.critical_in_block for s in scenarios)
    assert any(s.order.customer_id == "C00123" for s in scenarios)
    assert any("order value" in " ".join(s.reasons) for s in scenarios)
    assert any("customer care calls" in " ".join(s.reasons) for s in scenarios)


def test_a_scenario_whose_inputs_give_another_severity_is_refused(tmp_path: Path) -> None:
    suite = yaml.safe_load(SCENARIOS_PATH.read_text())
    suite["scenarios"] = [{**suite["scenarios"][0], "severity": "info"}]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    with pytest.raises(ScenarioError, match="crit-road-8kg-flight-approver: severity: the inputs give critical"):
        load_scenarios(path)
    suite["scenarios"] = [{**suite["scenarios"][0], "severity": "critical", "expect": {
        "specialists": ["shipment", "billing"], "actions": [], "approval": "none"}}]  # fmt: skip
    path.write_text(yaml.safe_dump(suite))
    with pytest.raises(ScenarioError, match=r"expect\.specialists: .*unknown specialist\(s\) \['billing'\]"):
        load_scenarios(path)


async def test_the_rules_route_the_suite_and_break_no_policy(
    deps: ToolDeps, knowledge: KnowledgeBase, db: psycopg.Connection[Any]
) -> None:
    report = await run_evaluation()
    summary = "\n".join(f"{r.scenario_id}: {m}" for r in report.results for m in r.mismatches)
    assert report.mode == "rules" and report.total >= 40 and report.errors == 0, summary
    assert report.routing_accuracy >= MIN_ACCURACY, summary
    assert report.action_accuracy >= MIN_ACCURACY, summary
    assert report.violations == 0, [r.violations for r in report.results if r.violations]
    assert report.passed
    assert {r.decided_by for r in report.results} == {"rules"}
    assert {r.stopped_at for r in report.results} == {"approval", "end"}  # it stops at approvals, never decides
    assert any(r.executed for r in report.results)  # the automatic actions really ran (and were re-judged)
    assert leftovers(db) == {}  # every scenario row and ledger row is gone
    assert knowledge.collection_sizes()["cases"] == 0  # and so are the cases the runs remembered


async def test_a_wrong_label_is_reported_as_a_mismatch_and_fails_the_evaluation(deps: ToolDeps) -> None:
    [scenario] = by_id("warn-delivered-minor-auto")
    wrong = replace(scenario, expect=Expected(frozenset({"payment"}), frozenset({"issue_refund"}), "approver"))
    report = await run_evaluation([wrong])
    [result] = report.results
    assert result.mismatches == [
        "routing: expected [payment], got [customer, payment]",
        "actions: expected [issue_refund], got [issue_refund, send_notification]",
        "approval: expected approver, got none",
    ]
    assert (report.routing_accuracy, report.action_accuracy, report.approval_accuracy) == (0.0, 0.0, 0.0)
    assert not report.passed and "actions accuracy 0.0% is below 95%" in report.failures


def test_an_executed_action_the_guardrails_refuse_is_a_violation() -> None:
    [scenario] = by_id("crit-delivered-major-approver")
    facts = OrderFacts(
        order_id="EVAL-x-0001", customer_ref="C1", known=False, warehouse_block="C", mode_of_shipment="Road",
        customer_care_calls=1, customer_rating=3, cost_of_product=300, prior_purchases=1, product_importance="low",
        gender="F", discount_offered=0, weight_in_gms=2000, order_value=300, amount_paid=300, weight_kg=2,
        days_late=8, payment_status="paid", order_status="delivered", severity="critical",
        promised_delivery_date=dt.date.today() - dt.timedelta(days=9),
    )  # fmt: skip
    history = CustomerHistory("C1", facts.order_id, 0, None, 0, 0.0, 0, 0, 0, 0, 0)
    refund = {
        "action_id": "payment:issue_refund:1",
        "agent": "payment",
        "name": "issue_refund",
        "args": {"order_id": facts.order_id, "amount": 150.0},
        "reason": "major tier",
        "amount": 150.0,
    }
    credit = {"action_id": "payment:apply_store_credit:1", "agent": "payment", "name": "apply_store_credit",
              "args": {"order_id": facts.order_id, "amount": 10.0, "kind": "goodwill"}, "reason": "goodwill",
              "amount": 10.0}  # fmt: skip
    values = {
        "plan": {"specialists": ["payment"], "decided_by": "rules"}, "proposals": [refund, credit],
        "verdicts": [{"allowed": True}, {"allowed": True}],
        "executed": [{"action_id": refund["action_id"], "name": "issue_refund", "actor": "agent:payment"},
                     {"action_id": credit["action_id"], "name": "apply_store_credit", "actor": "agent:payment"}],
    }  # fmt: skip
    result = measure(scenario, values, [], (facts, history), get_policy(), dt.datetime.now(dt.UTC))
    [unapproved, refused] = result.violations
    assert unapproved["action"] == "issue_refund" and "without approval; it needs approver" in unapproved["why"]
    assert refused["action"] == "apply_store_credit" and "only while the order is in transit" in refused["why"]
    report = EvaluationReport("rules", [result])
    assert report.violations == 2 and not report.passed and "2 policy violation(s)" in report.failures


async def test_the_llm_supervisor_is_what_gets_scored_when_a_model_is_configured(deps: ToolDeps) -> None:
    scenarios = by_id("crit-road-light-priority-goodwill", "warn-delivered-minor-auto", "warn-road-4500g-flight-auto")
    async with scripted_llm() as llm:
        model = ChatOpenAI(base_url=llm.base_url, api_key="test", model="scripted", max_retries=0)
        llm.script += [tools("shipment", "customer", "payment"), tools("escalation"), 500]
        tool_deps.install(replace(deps, llm=model))
        try:
            report = await run_evaluation(scenarios)
        finally:
            tool_deps.install(deps)
    right, wrong, failed = report.results
    assert report.mode == "llm" and len(llm.requests) == 3  # one supervisor call per scenario, nothing else
    assert (right.decided_by, right.routing_ok, right.actions_ok) == ("llm", True, True)
    assert (wrong.decided_by, wrong.routing_ok) == ("llm", False)
    assert wrong.mismatches[0] == "routing: expected [customer, payment], got [escalation]"
    assert (failed.decided_by, failed.routing_ok, failed.actions_ok) == ("rules", True, True)
    assert failed.fallback is not None and "Error code: 500" in failed.fallback
    assert (report.llm_decided, report.fallbacks) == (2, 1)
    assert report.routing_accuracy == pytest.approx(2 / 3) and not report.passed


def test_the_command_prints_the_report_and_exits_by_it(database_url: str, tmp_path: Path) -> None:
    suite = yaml.safe_load(SCENARIOS_PATH.read_text())
    right = next(s for s in suite["scenarios"] if s["id"] == "warn-delivered-minor-auto")
    wrong = {**right, "id": "wrong-label", "expect": {**right["expect"], "actions": ["issue_refund"]}}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({**suite, "scenarios": [right, wrong]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RIMAS_", "OPENAI_", "QDRANT_"))}
    env.update(DATABASE_URL=database_url, RIMAS_DATA_DIR=str(tmp_path / "data"), RIMAS_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "server.cli", "eval", "deviation", "--scenarios", str(path)]
    done = subprocess.run([*command, "--json"], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["mode"], report["scenarios"], report["passed"]) == ("rules", 2, False)
    assert report["actions"] == {"correct": 1, "total": 2, "accuracy": 0.5}, [
        (r["mismatches"], r["error"]) for r in report["results"]
    ]
    assert report["routing"]["accuracy"] == 1.0 and report["policy_violations"] == 0
    assert report["results"][1]["mismatches"] == [
        "actions: expected [issue_refund], got [issue_refund, send_notification]"
    ]
    assert "(DATABASE_URL)" in report["database"]

    path.write_text(yaml.safe_dump({**suite, "scenarios": [right]}))
    done = subprocess.run(command, cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warn-delivered-minor-auto" in done.stdout and "result: PASS" in done.stdout
    assert "totals: routing 1/1 (100.0%), actions 1/1 (100.0%), approvals 1/1 (100.0%)" in done.stdout

    path.write_text("version: 1\nscenarios: [{id: x}]\n")
    done = subprocess.run(command, cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 2 and "rimas eval deviation:" in done.stderr and "scenarios.0.description" in done.stderr
