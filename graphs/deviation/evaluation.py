"""The deviation workflow's evaluation (``rimas eval deviation``): the labelled scenarios of ``scenarios.yaml`` run
through the real graph and scored against their labels.

Each scenario's order, prediction and deviation are stored under an ``EVAL-`` order id the way the scoring
pipeline stores them (``tools/scoring.py``: the row as received in ``order_inputs``, one prediction, one deviation
whose severity and reasons come from :func:`tools.scoring.assess`, plus the warehouse-cluster reason when the
block has more critical deviations than the policy allows), together with the history the scenario describes (an
apology already sent, a compensation already on the order, ...); the deviation is then marked started the way the
auto-start marks it. The graph, compiled with an in-memory saver, runs with the process's tools and knowledge base
(:func:`tools.deps.current`) until it ends or stops at the approval interrupt: the evaluation never approves.
Everything the scenario stored or the graph wrote (ledger rows, the case remembered in the ``cases`` collection)
is removed afterwards, and rows an interrupted earlier evaluation left behind (older than an hour) at the start.

The figures: routing accuracy (the supervisor's specialists are exactly the label's), action accuracy (the set of
proposed action types is exactly the label's), approval accuracy (whether a person's approval is asked for, and
the highest role asked for), and policy violations as :func:`tools.guardrails.check_action` judges them (the
function that enforces the rules): an executed action it refuses, or one an agent executed although it needs a
person, judged on the order and the history as they were before the run. Proposals the guardrails refused (never
executed) are reported beside them. With ``tools.deps.current().llm`` set, the LLM supervisor decides; the report
says which scenarios it decided and where it failed and the rules decided instead.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from langgraph.checkpoint.memory import InMemorySaver
from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from graphs.deviation.graph import build_graph
from graphs.deviation.review import to_action
from graphs.deviation.specialists import REGISTRY
from ml.delay.features import CATEGORICAL, FEATURES, normalise_category
from rag.policy import ROLES, Policy, get_policy
from rag.service import CASES
from tools.actions import ACTION_NAMES
from tools.deps import ToolDeps, current
from tools.guardrails import check_action
from tools.orders import CustomerHistory, OrderFacts, customer_history, get_order
from tools.scoring import assess

SCENARIOS_PATH = Path(__file__).with_name("scenarios.yaml")
MIN_ACCURACY = 0.95
"""Routing and action accuracy below this fail the evaluation (as does any policy violation)."""
PREFIX = "EVAL-"
MODEL_VERSION = "eval-scenario"
"""The ``model_version`` of the stored predictions: the probability is the scenario's, not a model's."""
ACTOR = "eval:history"
STALE_AFTER = dt.timedelta(hours=1)
LEDGER_TABLES = ("ticket_updates", "tickets", "refunds", "store_credits", "notifications", "shipment_changes",
                 "interactions")  # fmt: skip
SCENARIO_TABLES = (*LEDGER_TABLES, "deviations", "predictions", "order_inputs")
"""Every table a scenario or its run writes to, in the order they are cleared (all keyed on ``order_id``)."""


class ScenarioError(ValueError):
    """The scenario file cannot be used; the message names the scenario and the field."""


# --------------------------------------------------------------------------- the scenario file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrderInput(_Strict):
    """An order as upstream sends it, with its dates relative to the day of the run."""

    warehouse_block: Literal["A", "B", "C", "D", "F"]
    mode_of_shipment: Literal["Ship", "Road", "Flight"]
    weight_in_gms: float = Field(gt=0)
    product_importance: Literal["low", "medium", "high"]
    customer_care_calls: int = Field(ge=0)
    customer_rating: int = Field(ge=1, le=5)
    prior_purchases: int = Field(ge=0)
    gender: Literal["F", "M"]
    discount_offered: float = Field(ge=0, le=100)
    order_value: float = Field(ge=0)
    cost_of_product: float | None = Field(default=None, ge=0)
    quantity: int | None = Field(default=None, ge=1)
    payment_status: Literal["paid", "pending", "refunded"]
    order_status: Literal["processing", "shipped", "delivered", "delayed"]
    customer_id: str | None = Field(default=None, min_length=1, max_length=128)
    carrier_name: str | None = None
    days_late: int = Field(ge=0, le=365)
    days_to_promise: int = Field(default=2, ge=0, le=60)
    delivered_days_ago: int = Field(default=1, ge=0, le=365)


class PreviousCompensation(_Strict):
    kind: Literal["refund", "goodwill", "refund_alternative"]
    amount: float = Field(gt=0)


class HistoryInput(_Strict):
    """What already happened before the deviation."""

    apology_hours_ago: float | None = Field(default=None, ge=0)
    previous_compensation: PreviousCompensation | None = None
    previous_upgrade: bool = False
    critical_in_block: int = Field(default=0, ge=0, le=50)
    refunds_to_customer_90d: int = Field(default=0, ge=0, le=20)


class ExpectInput(_Strict):
    specialists: list[str]
    actions: list[str]
    approval: str

    @field_validator("specialists")
    @classmethod
    def _specialists(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in REGISTRY]
        if unknown:
            raise ValueError(f"unknown specialist(s) {unknown}; allowed: {', '.join(REGISTRY)}")
        return value

    @field_validator("actions")
    @classmethod
    def _actions(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in ACTION_NAMES]
        if unknown:
            raise ValueError(f"unknown action(s) {unknown}; allowed: {', '.join(ACTION_NAMES)}")
        return value

    @field_validator("approval")
    @classmethod
    def _approval(cls, value: str) -> str:
        if value != "none" and value not in ROLES:
            raise ValueError(f"{value!r}; allowed: none, {', '.join(ROLES)}")
        return value


class ScenarioInput(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    description: str = Field(min_length=1)
    severity: Literal["critical", "warning", "info"]
    delay_probability: float | None = Field(default=None, gt=0, le=1)
    anomaly_score: float | None = Field(default=None, ge=0)
    order: dict[str, Any] = Field(default_factory=dict)
    history: HistoryInput = Field(default_factory=HistoryInput)
    expect: ExpectInput
    why: str = ""


class SuiteInput(_Strict):
    version: Literal[1]
    defaults: dict[str, Any] = Field(default_factory=dict)
    scenarios: list[ScenarioInput] = Field(min_length=1)


@dataclass(frozen=True)
class Expected:
    """A scenario's label."""

    specialists: frozenset[str]
    actions: frozenset[str]
    approval: str | None  # the highest role asked for; None: no approval is needed


@dataclass(frozen=True)
class Scenario:
    """One labelled deviation: its inputs, the severity and reasons the scoring pipeline gives them, its label."""

    id: str
    description: str
    severity: str
    delay_probability: float
    order: OrderInput
    history: HistoryInput
    expect: Expected
    reasons: tuple[str, ...]
    anomaly_score: float | None = None
    why: str = ""


def _problems(exc: ValidationError, where: str) -> str:
    return "; ".join(f"{where}{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def severity_and_reasons(
    order: OrderInput, probability: float, anomaly_score: float | None, policy: Policy
) -> tuple[str, list[str]]:
    """The severity and reasons the scoring pipeline gives this order (:func:`tools.scoring.assess`), before
    the warehouse-cluster step."""
    row = {
        "order_id": "scenario", "delay_probability": probability, "order_value": order.order_value,
        "quantity": float(order.quantity) if order.quantity else np.nan, "cost_of_product": _cost(order),
        "discount_offered": order.discount_offered, "customer_care_calls": float(order.customer_care_calls),
        "is_anomaly": anomaly_score is not None,
        "anomaly_score": anomaly_score if anomaly_score is not None else np.nan,
    }  # fmt: skip
    assessed = assess(pd.DataFrame([row]), {}, policy)
    return str(assessed["severity"].iloc[0]), list(json.loads(assessed["reasons"].iloc[0]))


def _cost(order: OrderInput) -> float:
    """The product's cost: given, else the order value before the discount (quantity 1)."""
    if order.cost_of_product is not None:
        return order.cost_of_product
    share = 1 - order.discount_offered / 100
    return round(order.order_value / share, 2) if share > 0 else order.order_value


def load_scenarios(path: Path | None = None, *, policy: Policy | None = None) -> list[Scenario]:
    """The scenarios of ``path`` (default: the packaged suite); raises :class:`ScenarioError` naming the problem.

    A scenario whose inputs give another severity than the one it states (through the scoring pipeline's
    thresholds and escalators) is refused: its label would be about another case."""
    policy = policy or get_policy()
    source = path or SCENARIOS_PATH
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{source}: cannot be read ({exc})") from exc
    try:
        suite = SuiteInput.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(f"{source}: {_problems(exc, '')}") from exc
    seen: set[str] = set()
    scenarios = []
    default_order = dict(suite.defaults.get("order") or {})
    default_probability = suite.defaults.get("delay_probability")
    for item in suite.scenarios:
        where = f"scenario {item.id}"
        if item.id in seen:
            raise ScenarioError(f"{source}: {where}: the id is used twice")
        seen.add(item.id)
        try:
            order = OrderInput.model_validate({**default_order, **item.order})
        except ValidationError as exc:
            raise ScenarioError(f"{source}: {_problems(exc, f'{where}: order.')}") from exc
        probability = item.delay_probability if item.delay_probability is not None else default_probability
        if not isinstance(probability, int | float) or not 0 < float(probability) <= 1:
            raise ScenarioError(f"{source}: {where}: delay_probability: a number in (0, 1] is required")
        severity, reasons = severity_and_reasons(order, float(probability), item.anomaly_score, policy)
        if severity != item.severity:
            raise ScenarioError(f"{source}: {where}: severity: the inputs give {severity} ({'; '.join(reasons)}), "
                                f"not {item.severity}")  # fmt: skip
        expect = Expected(frozenset(item.expect.specialists), frozenset(item.expect.actions),
                          None if item.expect.approval == "none" else item.expect.approval)  # fmt: skip
        scenarios.append(Scenario(item.id, item.description, item.severity, float(probability), order, item.history,
                                  expect, tuple(reasons), item.anomaly_score, item.why))  # fmt: skip
    return scenarios


# --------------------------------------------------------------------------- storing a scenario


@dataclass(frozen=True)
class Stored:
    """The ids a stored scenario runs under."""

    order_id: str
    deviation_id: str
    thread_id: str
    customer_ref: str


def order_dates(order: OrderInput, policy: Policy, today: dt.date) -> dict[str, dt.date | None]:
    """The order's dates from its relative ones (see the scenario file's header)."""
    delivered: dt.date | None = None
    if order.order_status == "delivered":
        arrived = today - dt.timedelta(days=order.delivered_days_ago)
        delivered, promised = arrived, arrived - dt.timedelta(days=order.days_late)
    else:
        late = order.days_late
        promised = today - dt.timedelta(days=late) if late > 0 else today + dt.timedelta(days=order.days_to_promise)
    carrier = policy.carrier_for(order.mode_of_shipment, order.product_importance)
    shipped = None if order.order_status == "processing" else promised - dt.timedelta(days=carrier.transit_days)
    ordered = (shipped or min(promised, today)) - dt.timedelta(days=2)
    return {"order_date": ordered, "promised_delivery_date": promised, "ship_date": shipped,
            "delivery_date": delivered}  # fmt: skip


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _features(order: OrderInput) -> dict[str, Any]:
    """The ten model features as the scoring pipeline stores them (categories in their canonical spelling)."""
    values = order.model_dump()
    values["cost_of_product"] = _cost(order)
    return {name: normalise_category(name, values[name]) if name in CATEGORICAL else float(values[name])
            for name in FEATURES}  # fmt: skip


def _input_row(order_id: str, customer_ref: str, order: OrderInput, policy: Policy, today: dt.date) -> dict[str, Any]:
    """The ``order_inputs.data`` of the order, with the keys the scoring pipeline writes."""
    carrier = policy.carrier_for(order.mode_of_shipment, order.product_importance)
    return {
        "order_id": order_id, **{k: _iso(v) for k, v in order_dates(order, policy, today).items()},
        **_features(order), "carrier_name": order.carrier_name or carrier.name, "tracking_id": None,
        "payment_status": order.payment_status, "order_status": order.order_status, "quantity": order.quantity,
        "customer_id": customer_ref, "order_value": order.order_value,
    }  # fmt: skip


async def _insert_deviation(
    conn: AsyncConnection[Any], order_id: str, customer_ref: str, order: OrderInput, *, probability: float,
    severity: str, reasons: Sequence[str], anomaly_score: float | None, policy: Policy, today: dt.date,
) -> str:  # fmt: skip
    """One order, its prediction and its deviation, as tools.scoring writes them; returns the deviation id."""
    data = _input_row(order_id, customer_ref, order, policy, today)
    await conn.execute(
        "INSERT INTO order_inputs (order_id, customer_ref, data, source, known_order) VALUES (%s, %s, %s, 'api', "
        "false)", (order_id, customer_ref, Jsonb(data)),
    )  # fmt: skip
    top = [{"feature": "mode_of_shipment", "text": f"sending by {order.mode_of_shipment.lower()}"}]
    cur = await conn.execute(
        "INSERT INTO predictions (order_id, source, delay_probability, severity, model_version, top_features, "
        "features, anomaly_score, is_anomaly, anomaly_model_version, order_value) "
        "VALUES (%s, 'api', %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING prediction_id",
        (order_id, probability, severity, MODEL_VERSION, Jsonb(top), Jsonb(_features(order)), anomaly_score,
         anomaly_score is not None, MODEL_VERSION if anomaly_score is not None else None, order.order_value),
    )  # fmt: skip
    prediction = await cur.fetchone()
    assert prediction is not None
    cur = await conn.execute(
        "INSERT INTO deviations (deviation_id, prediction_id, order_id, severity, reasons, status, delay_probability) "
        "VALUES (gen_random_uuid(), %s, %s, %s, %s, 'open', %s) RETURNING deviation_id::text AS deviation_id",
        (prediction["prediction_id"], order_id, severity, Jsonb(list(reasons)), probability),
    )  # fmt: skip
    row = await cur.fetchone()
    assert row is not None
    return str(row["deviation_id"])


async def _mark_started(conn: AsyncConnection[Any], deviation_id: str, thread_id: str) -> None:
    """What the auto-start does to a deviation it starts a thread for (server.deviation_starter)."""
    await conn.execute(
        "UPDATE deviations SET thread_id = %s, status = 'in_progress', started_at = now(), updated_at = now() "
        "WHERE deviation_id = %s AND thread_id IS NULL", (thread_id, deviation_id),
    )  # fmt: skip


_CLUSTER_COUNT = """
SELECT count(*) AS n FROM deviations d JOIN order_inputs oi ON oi.order_id = d.order_id
WHERE d.severity = 'critical' AND d.created_at >= now() - make_interval(hours => %(hours)s)
  AND oi.warehouse_block = %(block)s
"""


async def _cluster(conn: AsyncConnection[Any], prefix: str, block: str, policy: Policy) -> None:
    """The scoring pipeline's warehouse-cluster step for ``block``, applied to this scenario's rows only."""
    escalators = policy.severity.escalators
    cur = await conn.execute(_CLUSTER_COUNT, {"hours": escalators.warehouse_window_hours, "block": block})
    row = await cur.fetchone()
    count = int(row["n"]) if row else 0
    if count <= escalators.warehouse_critical_count_over:
        return
    route = policy.escalation.routes.get("warehouse_cluster", "management").replace("_", " ")
    reason = (f"warehouse cluster: {count} critical deviations in warehouse block {block} within "
              f"{escalators.warehouse_window_hours} h, above {escalators.warehouse_critical_count_over} "
              f"(routes to {route})")  # fmt: skip
    await conn.execute(
        "UPDATE deviations SET reasons = reasons || %s, updated_at = now() WHERE starts_with(order_id, %s) "
        "AND severity = 'critical'", (Jsonb([reason]), prefix),
    )  # fmt: skip


async def _history(
    conn: AsyncConnection[Any], order_id: str, customer_ref: str, scenario: Scenario, now: dt.datetime
) -> None:
    """The rows of what already happened to the customer and the order."""
    history, order = scenario.history, scenario.order
    rule = "evaluation scenario history"
    if history.apology_hours_ago is not None:
        at = now - dt.timedelta(hours=history.apology_hours_ago)
        await conn.execute(
            "INSERT INTO notifications (idempotency_key, customer_ref, order_id, channel, template, kind, subject, "
            "body, status, send_after, sent_at, created_at, actor, agent, policy_rule) VALUES (%s, %s, %s, 'email', "
            "'delay-apology', 'apology', 'About your order', 'We are sorry for the delay of your order.', 'sent', "
            "%s, %s, %s, %s, 'customer', %s)",
            (f"{order_id}:history:apology", customer_ref, f"{order_id}-P", at, at, at, ACTOR, rule),
        )  # fmt: skip
    previous = history.previous_compensation
    if previous is not None and previous.kind == "refund":
        await conn.execute(
            "INSERT INTO refunds (idempotency_key, order_id, customer_ref, amount, reason, actor, agent, policy_rule, "
            "created_at) VALUES (%s, %s, %s, %s, 'delay compensation', %s, 'payment', %s, %s)",
            (f"{order_id}:history:refund", order_id, customer_ref, previous.amount, ACTOR, rule,
             now - dt.timedelta(days=2)),
        )  # fmt: skip
    elif previous is not None:
        await conn.execute(
            "INSERT INTO store_credits (idempotency_key, customer_ref, order_id, amount, kind, reason, expires_on, "
            "actor, agent, policy_rule, created_at) VALUES (%s, %s, %s, %s, %s, 'delay compensation', %s, %s, "
            "'payment', %s, %s)",
            (f"{order_id}:history:credit", customer_ref, order_id, previous.amount, previous.kind,
             (now + dt.timedelta(days=365)).date(), ACTOR, rule, now - dt.timedelta(days=2)),
        )  # fmt: skip
    if history.previous_upgrade:
        await conn.execute(
            "INSERT INTO shipment_changes (idempotency_key, order_id, change_type, from_value, to_value, cost, actor, "
            "agent, policy_rule, created_at) VALUES (%s, %s, 'mode_upgrade', %s, 'Flight', 10, %s, 'shipment', %s, "
            "%s)", (f"{order_id}:history:upgrade", order_id, order.mode_of_shipment, ACTOR, rule,
                    now - dt.timedelta(days=1)),
        )  # fmt: skip
    for k in range(1, history.refunds_to_customer_90d + 1):
        await conn.execute(
            "INSERT INTO refunds (idempotency_key, order_id, customer_ref, amount, reason, actor, agent, policy_rule, "
            "created_at) VALUES (%s, %s, %s, 15, 'delay compensation', %s, 'payment', %s, %s)",
            (f"{order_id}:history:refund-{k}", f"{order_id}-R{k}", customer_ref, ACTOR, rule,
             now - dt.timedelta(days=10 * k)),
        )  # fmt: skip


async def store_scenario(scenario: Scenario, order_id: str, *, now: dt.datetime) -> Stored:
    """Store the scenario's order, prediction, deviation and history under ``order_id`` (in one transaction)."""
    deps = current()
    policy, today = deps.policy, now.date()
    customer_ref = scenario.order.customer_id or f"{order_id}-C"
    thread_id = f"eval-{order_id.lower()}"
    async with deps.pool.connection() as conn, conn.transaction():
        for k in range(1, scenario.history.critical_in_block + 1):  # the other deviations of the block
            companion = f"{order_id}-N{k}"
            other = await _insert_deviation(conn, companion, f"{companion}-C", scenario.order, probability=0.9,
                                             severity="critical", reasons=["delay probability 0.90 above the "
                                             "critical threshold 0.7"], anomaly_score=None, policy=policy,
                                             today=today)  # fmt: skip
            await _mark_started(conn, other, f"eval-{companion.lower()}")
        deviation_id = await _insert_deviation(
            conn, order_id, customer_ref, scenario.order, probability=scenario.delay_probability,
            severity=scenario.severity, reasons=scenario.reasons, anomaly_score=scenario.anomaly_score, policy=policy,
            today=today,
        )  # fmt: skip
        if scenario.severity == "critical":
            await _cluster(conn, order_id, scenario.order.warehouse_block, policy)
        await _history(conn, order_id, customer_ref, scenario, now)
        await _mark_started(conn, deviation_id, thread_id)
    return Stored(order_id, deviation_id, thread_id, customer_ref)


async def remove_rows(prefix: str) -> None:
    """Remove every row whose order id starts with ``prefix``, and the cases remembered for its deviations."""
    deps = current()
    async with deps.pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT deviation_id::text AS id FROM deviations WHERE starts_with(order_id, %s)", (prefix,)
        )
        deviation_ids = [str(row["id"]) for row in await cur.fetchall()]
        for table in SCENARIO_TABLES:
            await conn.execute(sql.SQL("DELETE FROM {} WHERE starts_with(order_id, %s)").format(sql.Identifier(table)),
                               (prefix,))  # fmt: skip
    knowledge = deps.knowledge
    if knowledge is None or not deviation_ids:
        return
    async with deps.knowledge_lock:
        for deviation_id in deviation_ids:  # a case's id is its deviation's (rag.cases)
            await asyncio.to_thread(knowledge.delete_document, deviation_id, CASES)


async def remove_stale_runs() -> list[str]:
    """Remove what evaluations interrupted more than an hour ago left behind; returns their prefixes."""
    async with current().pool.connection() as conn:
        cur = await conn.execute(
            "SELECT DISTINCT substring(order_id from '^EVAL-[a-z0-9]+-') AS prefix FROM order_inputs "
            "WHERE starts_with(order_id, %s) AND first_seen_at < now() - %s", (PREFIX, STALE_AFTER),
        )  # fmt: skip
        prefixes = sorted(str(row["prefix"]) for row in await cur.fetchall() if row["prefix"])
    for prefix in prefixes:
        await remove_rows(prefix)
    return prefixes


# --------------------------------------------------------------------------- measuring a run


@dataclass
class ScenarioResult:
    """What the graph did with one scenario, next to its label."""

    scenario_id: str
    expected: Expected
    specialists: list[str] | None = None
    actions: list[str] | None = None
    approval: str | None = None  # the highest role the approval request asks for; None: no approval
    severity: str | None = None
    stopped_at: str = "error"  # approval | end | error
    decided_by: str | None = None  # rules | llm
    fallback: str | None = None
    executed: list[str] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)  # proposals the guardrails refused
    violations: list[dict[str, Any]] = field(default_factory=list)  # executed actions check_action refuses
    error: str | None = None

    @property
    def routing_ok(self) -> bool:
        return self.specialists is not None and set(self.specialists) == self.expected.specialists

    @property
    def actions_ok(self) -> bool:
        return self.actions is not None and set(self.actions) == self.expected.actions

    @property
    def approval_ok(self) -> bool:
        return self.error is None and self.approval == self.expected.approval

    @property
    def mismatches(self) -> list[str]:
        """Each way the run differs from the label, in words."""
        if self.error is not None:
            return [f"the run failed: {self.error}"]
        found = []
        if not self.routing_ok:
            found.append(f"routing: expected {_names(self.expected.specialists)}, got {_names(self.specialists)}")
        if not self.actions_ok:
            found.append(f"actions: expected {_names(self.expected.actions)}, got {_names(self.actions)}")
        if not self.approval_ok:
            found.append(f"approval: expected {self.expected.approval or 'none'}, got {self.approval or 'none'}")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario_id, "severity": self.severity, "stopped_at": self.stopped_at,
            "decided_by": self.decided_by, "fallback": self.fallback,
            "expected": {"specialists": sorted(self.expected.specialists), "actions": sorted(self.expected.actions),
                         "approval": self.expected.approval},
            "got": {"specialists": self.specialists, "actions": self.actions, "approval": self.approval},
            "routing_ok": self.routing_ok, "actions_ok": self.actions_ok, "approval_ok": self.approval_ok,
            "executed": self.executed, "refused": self.refused, "violations": self.violations,
            "mismatches": self.mismatches, "error": self.error,
        }  # fmt: skip


def _names(values: Any) -> str:
    return "[" + ", ".join(sorted(values)) + "]" if values is not None else "nothing"


def highest_role(roles: Sequence[str | None]) -> str | None:
    """The highest of the roles named (None when none is)."""
    named = [r for r in roles if r in ROLES]
    return max(named, key=ROLES.index) if named else None


def measure(
    scenario: Scenario, values: dict[str, Any], interrupts: Sequence[Any], before: tuple[OrderFacts, CustomerHistory],
    policy: Policy, now: dt.datetime,
) -> ScenarioResult:  # fmt: skip
    """Score a run's final state (``values``, pending ``interrupts``) against the scenario's label; executed
    actions are judged by :func:`check_action` on the order and history as they were ``before`` the run."""
    plan = values.get("plan") or {}
    proposals: list[dict[str, Any]] = list(values.get("proposals") or [])
    verdicts: list[dict[str, Any]] = list(values.get("verdicts") or [])
    requests = [r for i in interrupts for r in ((getattr(i, "value", None) or {}).get("action_requests") or [])]
    result = ScenarioResult(
        scenario.id, scenario.expect, specialists=list(plan.get("specialists") or []),
        actions=sorted({str(p["name"]) for p in proposals}), approval=highest_role([r.get("required_role")
                                                                                    for r in requests]),
        severity=values.get("severity"), stopped_at="approval" if interrupts else "end",
        decided_by=plan.get("decided_by"), fallback=plan.get("fallback"),
    )  # fmt: skip
    for proposal, verdict in zip(proposals, verdicts, strict=False):
        if not verdict.get("allowed"):
            result.refused.append({"action": proposal["name"], "action_id": proposal["action_id"],
                                   "violations": list(verdict.get("violations") or [])})  # fmt: skip
    by_id = {str(p["action_id"]): p for p in proposals}
    facts, history = before
    for done in values.get("executed") or []:
        result.executed.append(str(done["name"]))
        source = by_id.get(str(done["action_id"]))
        if source is None:
            result.violations.append({"action": done["name"], "action_id": done["action_id"],
                                      "why": "executed without a proposal"})  # fmt: skip
            continue
        judged = check_action(to_action(source), facts, history, policy, now=now)
        if not judged.allowed:
            result.violations.append({"action": done["name"], "action_id": done["action_id"],
                                      "why": "; ".join(judged.violations) or judged.reason})  # fmt: skip
        elif not judged.automatic and str(done.get("actor", "")).startswith("agent:"):
            result.violations.append({"action": done["name"], "action_id": done["action_id"],
                                      "why": f"executed by {done['actor']} without approval; it needs "
                                             f"{judged.required_role} ({judged.rule})"})  # fmt: skip
    return result


async def run_scenario(graph: Any, scenario: Scenario, order_id: str) -> ScenarioResult:
    """Store one scenario, run it until the graph ends or asks for approval, measure it, remove its rows."""
    deps = current()
    try:
        now = dt.datetime.now(dt.UTC)
        stored = await store_scenario(scenario, order_id, now=now)
        facts = await get_order(order_id, now=now)
        if facts is None:  # pragma: no cover - stored just above
            raise LookupError(f"order {order_id} was not stored")
        history = await customer_history(facts.customer_ref, order_id, now=now)
        config = {"configurable": {"thread_id": stored.thread_id}}
        await graph.ainvoke({"deviation_id": stored.deviation_id}, config)
        snapshot = await graph.aget_state(config)
        return measure(scenario, dict(snapshot.values), list(snapshot.interrupts), (facts, history), deps.policy, now)
    except Exception as exc:  # a failed run is a miss on every count, with the reason
        return ScenarioResult(scenario.id, scenario.expect, error=f"{type(exc).__name__}: {exc}")
    finally:
        await remove_rows(order_id)


# --------------------------------------------------------------------------- the report


@dataclass
class EvaluationReport:
    """Every scenario's result and the totals."""

    mode: str  # rules | llm: who decides the routing
    results: list[ScenarioResult]
    min_accuracy: float = MIN_ACCURACY
    stale_removed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.results)

    def _share(self, ok: list[bool]) -> float:
        return sum(ok) / len(ok) if ok else 0.0

    @property
    def routing_accuracy(self) -> float:
        return self._share([r.routing_ok for r in self.results])

    @property
    def action_accuracy(self) -> float:
        return self._share([r.actions_ok for r in self.results])

    @property
    def approval_accuracy(self) -> float:
        return self._share([r.approval_ok for r in self.results])

    @property
    def violations(self) -> int:
        return sum(len(r.violations) for r in self.results)

    @property
    def refused_proposals(self) -> int:
        return sum(len(r.refused) for r in self.results)

    @property
    def llm_decided(self) -> int:
        return sum(r.decided_by == "llm" for r in self.results)

    @property
    def fallbacks(self) -> int:
        return sum(r.fallback is not None for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.results)

    @property
    def failures(self) -> list[str]:
        """Why the evaluation fails (empty: it passes)."""
        found = []
        for name, value in (("routing", self.routing_accuracy), ("actions", self.action_accuracy)):
            if value < self.min_accuracy - 1e-9:
                found.append(f"{name} accuracy {value:.1%} is below {self.min_accuracy:.0%}")
        if self.violations:
            found.append(f"{self.violations} policy violation(s)")
        return found

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        def count(ok: list[bool]) -> dict[str, Any]:
            return {"correct": sum(ok), "total": len(ok), "accuracy": round(self._share(ok), 4)}

        return {
            "mode": self.mode, "scenarios": self.total,
            "routing": count([r.routing_ok for r in self.results]),
            "actions": count([r.actions_ok for r in self.results]),
            "approvals": count([r.approval_ok for r in self.results]),
            "policy_violations": self.violations, "refused_proposals": self.refused_proposals,
            "llm_decided": self.llm_decided, "llm_fallbacks": self.fallbacks, "errors": self.errors,
            "min_accuracy": self.min_accuracy, "passed": self.passed, "failures": self.failures,
            "stale_runs_removed": self.stale_removed,
            "results": [r.to_dict() for r in self.results],
        }  # fmt: skip


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def format_report(report: EvaluationReport) -> str:
    """The report as a table, the mismatches, the refusals and the totals."""
    width = max([len("scenario"), *(len(r.scenario_id) for r in report.results)])
    lines = [f"deviation workflow evaluation: {report.total} scenarios, supervisor: {report.mode}", "",
             f"{'scenario':<{width}}  {'severity':<8}  {'routing':<7}  {'actions':<7}  {'approval':<8}  "
             f"{'asks':<8}  {'stop':<8}  decided by"]  # fmt: skip
    for r in report.results:
        decided = (r.decided_by or "-") + (" (fallback)" if r.fallback else "")
        lines.append(f"{r.scenario_id:<{width}}  {r.severity or '-':<8}  {_mark(r.routing_ok):<7}  "
                     f"{_mark(r.actions_ok):<7}  {_mark(r.approval_ok):<8}  {r.approval or 'none':<8}  "
                     f"{r.stopped_at:<8}  {decided}")  # fmt: skip
    missed = [r for r in report.results if r.mismatches]
    if missed:
        lines += ["", "mismatches:"]
        for r in missed:
            lines += [f"  {r.scenario_id}: {m}" for m in r.mismatches]
    refused = [(r.scenario_id, x) for r in report.results for x in r.refused]
    if refused:
        lines += ["", "proposals the guardrails refused (not executed):"]
        lines += [f"  {sid}: {x['action']}: {'; '.join(x['violations'])}" for sid, x in refused]
    violations = [(r.scenario_id, x) for r in report.results for x in r.violations]
    if violations:
        lines += ["", "policy violations (executed actions check_action refuses):"]
        lines += [f"  {sid}: {x['action']}: {x['why']}" for sid, x in violations]
    fallbacks = [r for r in report.results if r.fallback]
    if fallbacks:
        lines += ["", "LLM supervisor failures (the rules decided):"]
        lines += [f"  {r.scenario_id}: {r.fallback}" for r in fallbacks]

    def total(name: str, ok: list[bool]) -> str:
        return f"{name} {sum(ok)}/{len(ok)} ({report._share(ok):.1%})"

    lines += ["", "totals: " + ", ".join([
        total("routing", [r.routing_ok for r in report.results]),
        total("actions", [r.actions_ok for r in report.results]),
        total("approvals", [r.approval_ok for r in report.results]),
        f"policy violations {report.violations}", f"refused proposals {report.refused_proposals}",
    ]) + (f", LLM decided {report.llm_decided}, fell back {report.fallbacks}" if report.mode == "llm" else "")
        + (f", failed runs {report.errors}" if report.errors else "")]  # fmt: skip
    verdict = "PASS" if report.passed else "FAIL: " + "; ".join(report.failures)
    lines.append(f"result: {verdict} (routing and actions at least {report.min_accuracy:.0%}, no policy violation)")
    return "\n".join(lines)


async def run_evaluation(
    scenarios: Sequence[Scenario] | None = None, *, run_id: str | None = None, min_accuracy: float = MIN_ACCURACY
) -> EvaluationReport:
    """Run ``scenarios`` (default: the packaged suite) one after the other through the deviation graph with the
    installed tools (:func:`tools.deps.current`) and score them. ``run_id`` names the run in the order ids
    (``EVAL-<run_id>-NNNN``; default a random one)."""
    deps: ToolDeps = current()
    suite = list(scenarios) if scenarios is not None else load_scenarios(policy=deps.policy)
    run = run_id or uuid.uuid4().hex[:8]
    if not re.fullmatch(r"[a-z0-9]{1,32}", run):
        raise ValueError(f"run_id: {run!r} must be 1-32 lowercase letters and digits")
    if not 0 <= min_accuracy <= 1 or math.isnan(min_accuracy):
        raise ValueError(f"min_accuracy: a fraction from 0 to 1, got {min_accuracy}")
    stale = await remove_stale_runs()
    graph = build_graph(checkpointer=InMemorySaver())
    prefix = f"{PREFIX}{run}-"
    results = []
    try:
        for number, scenario in enumerate(suite, start=1):
            results.append(await run_scenario(graph, scenario, f"{prefix}{number:04d}"))
    finally:
        await remove_rows(prefix)
    return EvaluationReport("llm" if deps.llm is not None else "rules", results, min_accuracy, stale)
