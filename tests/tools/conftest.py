"""Fixtures of the tool tests: the tools' resources over a real pool on the module's database, order builders.

``tools`` installs ``ToolDeps(pool=...)`` (and, for the knowledge tests, a knowledge base) for the module;
``seed_order`` / ``external_order`` insert an order the way the seed and the scoring pipeline store them;
``make_facts`` / ``make_history`` build the pure inputs of the guardrail tests.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from rag.policy import Policy, get_policy
from server.db import CONNECTION_KWARGS
from tools import deps as tool_deps
from tools.actions import ACTION_SCOPES, ProposedAction, Verdict
from tools.deps import ToolDeps
from tools.guardrails import check_action
from tools.orders import CustomerHistory, OrderFacts

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
"""A Tuesday noon (outside quiet hours): the clock of every test that does not set its own."""

_customer_ids = itertools.count(1000)


@pytest.fixture(scope="session")
def policy() -> Policy:
    return get_policy()


@pytest.fixture(scope="module")
async def tools(database_url: str) -> AsyncIterator[ToolDeps]:
    """The tools' resources for this module: a pool on its database, the packaged policy, no knowledge base."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url, min_size=1, max_size=4, kwargs=CONNECTION_KWARGS, open=False
    )
    await pool.open(wait=True, timeout=30)
    deps = ToolDeps(pool=pool)
    tool_deps.install(deps)
    try:
        yield deps
    finally:
        tool_deps.install(None)
        await pool.close()


def _new_order_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


ORDER_DEFAULTS: dict[str, Any] = {
    "warehouse_block": "B",
    "mode_of_shipment": "Road",
    "carrier_name": "Roadrunner Logistics",
    "customer_care_calls": 3,
    "customer_rating": 3,
    "prior_purchases": 3,
    "gender": "F",
    "product_importance": "medium",
    "cost_of_product": 200,
    "discount_offered": 5,
    "weight_in_gms": 5000,
    "order_value": 190,
    "payment_status": "paid",
    "order_status": "delayed",
}


@pytest.fixture
def seed_order(db: psycopg.Connection[Any]) -> Callable[..., str]:
    """Insert a seeded customer and order (defaults above, 4 days late on NOW); returns the order id."""

    def make(
        *,
        customer_id: int | None = None,
        days_late: int = 4,
        prediction: dict[str, Any] | None = None,
        deviation: str | None = None,
        **fields: Any,
    ) -> str:
        order_id = _new_order_id("ORD")
        cid = customer_id or next(_customer_ids)
        db.execute(
            "INSERT INTO customers (customer_id, name, email, gender, city, segment, prior_purchases, rating,"
            " care_calls, loyalty_points, created_at) VALUES (%s, %s, %s, 'F', 'Lyon', 'regular', 3, 4, 1, 10,"
            " '2025-01-01') ON CONFLICT (customer_id) DO NOTHING",
            (cid, f"Ava Harper{cid}", f"ava.harper.{cid}@example.com"),
        )
        promised = NOW.date() - timedelta(days=days_late)
        row = {
            **ORDER_DEFAULTS,
            "order_date": promised - timedelta(days=6),
            "promised_delivery_date": promised,
            "ship_date": promised - timedelta(days=4),
            "delivery_date": None,
            **fields,
        }
        row.update(order_id=order_id, customer_id=cid, tracking_id=f"RRL{uuid.uuid4().int % 10**10:010d}")
        columns = list(row)
        db.execute(
            f"INSERT INTO orders ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
            [row[c] for c in columns],
        )
        _score(db, order_id, prediction, deviation)
        return order_id

    return make


@pytest.fixture
def external_order(db: psycopg.Connection[Any]) -> Callable[..., str]:
    """Insert an order the scoring pipeline received under upstream ids (``order_inputs``); returns its id."""

    def make(
        *,
        customer_ref: str | None = "C00123",
        prediction: dict[str, Any] | None = None,
        deviation: str | None = None,
        **fields: Any,
    ) -> str:
        order_id = _new_order_id("EXT")
        data = {k: v for k, v in ORDER_DEFAULTS.items() if k not in ("order_value", "carrier_name")}
        data.update(
            order_date=(NOW.date() - timedelta(days=8)).isoformat(),
            promised_delivery_date=(NOW.date() - timedelta(days=2)).isoformat(),
            ship_date=(NOW.date() - timedelta(days=6)).isoformat(),
        )
        data.update(fields)
        db.execute(
            "INSERT INTO order_inputs (order_id, customer_ref, data, source) VALUES (%s, %s, %s, 'api')",
            (order_id, customer_ref, Jsonb(data)),
        )
        _score(db, order_id, prediction, deviation)
        return order_id

    return make


def _score(
    db: psycopg.Connection[Any], order_id: str, prediction: dict[str, Any] | None, deviation: str | None
) -> None:
    if prediction is not None:
        values = {
            "delay_probability": 0.85,
            "severity": "critical",
            "model_version": "delay-test",
            "top_features": [{"feature": "weight_in_gms", "contribution": 0.2}],
            **prediction,
        }
        db.execute(
            "INSERT INTO predictions (order_id, source, delay_probability, severity, model_version, top_features,"
            " features) VALUES (%s, 'api', %s, %s, %s, %s, '{}'::jsonb)",
            (
                order_id,
                values["delay_probability"],
                values["severity"],
                values["model_version"],
                Jsonb(values["top_features"]),
            ),
        )
    if deviation is not None:
        db.execute(
            "INSERT INTO deviations (deviation_id, order_id, severity) VALUES (%s, %s, %s)",
            (uuid.uuid4(), order_id, deviation),
        )


def facts_for(**overrides: Any) -> OrderFacts:
    """A paid Road order of 5 kg, 190 USD, 4 days late on NOW, critical, in transit (override any field)."""
    promised = overrides.pop("promised_delivery_date", NOW.date() - timedelta(days=overrides.get("days_late", 4)))
    weight_g = overrides.get("weight_in_gms", 5000.0)
    base = OrderFacts(
        order_id="ORD-T1",
        customer_ref="17",
        known=True,
        customer_id=17,
        warehouse_block="B",
        mode_of_shipment="Road",
        customer_care_calls=3,
        customer_rating=3,
        cost_of_product=200.0,
        prior_purchases=3,
        product_importance="medium",
        gender="F",
        discount_offered=5.0,
        weight_in_gms=weight_g,
        order_value=190.0,
        amount_paid=190.0,
        weight_kg=weight_g / 1000,
        days_late=4,
        order_date=promised - timedelta(days=6),
        promised_delivery_date=promised,
        ship_date=promised - timedelta(days=4),
        delivery_date=None,
        carrier_name="Roadrunner Logistics",
        payment_status="paid",
        order_status="delayed",
        delay_probability=0.85,
        severity="critical",
        block_backlog_hours=10.0,
        as_of=NOW.date(),
    )
    if "amount_paid" in overrides and "order_value" not in overrides:
        overrides["order_value"] = overrides["amount_paid"]
    return dataclasses.replace(base, **overrides)


def history_for(**overrides: Any) -> CustomerHistory:
    """Nothing done yet for the customer or the order (override any field)."""
    base = CustomerHistory(
        customer_ref="17",
        order_id="ORD-T1",
        apologies_in_window=0,
        last_apology_at=None,
        compensations_on_order=0,
        compensation_usd_on_order=0.0,
        refunds_on_order=0,
        store_credits_on_order=0,
        previous_deviations=0,
        resolved_deviations=0,
        care_calls=3,
        window_hours=48,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def make_facts() -> Callable[..., OrderFacts]:
    return facts_for


@pytest.fixture
def make_history() -> Callable[..., CustomerHistory]:
    return history_for


def days_ago(days: int) -> date:
    return NOW.date() - timedelta(days=days)


@pytest.fixture
def now() -> datetime:
    return NOW


AGENT_OF = {name: agent for agent, names in reversed(list(ACTION_SCOPES.items())) for name in names}
"""The specialist that proposes each action (log_interaction: customer)."""


@pytest.fixture
def judge(policy: Policy) -> Callable[..., Verdict]:
    """Check one action against the packaged policy: ``judge("issue_refund", {...}, amount=50, facts=...)``."""

    def run(
        name: str,
        args: dict[str, Any] | None = None,
        *,
        amount: float | None = None,
        agent: str | None = None,
        facts: OrderFacts | None = None,
        history: CustomerHistory | None = None,
        now: datetime = NOW,
        decider: str | None = None,
    ) -> Verdict:
        facts = facts or facts_for()
        agent = agent or AGENT_OF[name]
        action = ProposedAction(
            f"{agent}:{name}:1",
            agent,
            name,  # type: ignore[arg-type]
            {"order_id": facts.order_id, **(args or {})},
            "test",
            amount,
        )
        return check_action(action, facts, history or history_for(), policy, now=now, decider_role=decider)

    return run
