"""The state of a ``deviation`` thread: everything the specialists, the approver and the audit need, in one place.

The graph's state is the record of how a deviation was resolved (the checkpoint history is its audit trail), so
each field says what it holds and who writes it. Values are plain JSON (dicts, lists, strings, numbers): the
thread is read by the REST API, the UIs and LangGraph Studio. Specialists run in parallel and write only their
own entries: their outputs merge through the reducers below.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import TypedDict


def merge_dicts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer for per-specialist maps: each parallel branch adds its own key."""
    return {**(left or {}), **(right or {})}


class DeviationInput(TypedDict, total=False):
    """What a run starts from: a deviation (as the auto-start and ``/trigger-agent`` send), or an order id."""

    deviation_id: str
    order_id: str


class DeviationState(DeviationInput, total=False):
    """A deviation thread's state."""

    order: dict[str, Any]
    """The order's facts (tools.orders.OrderFacts as a dict): ids, shipping fields, value, dates, days late."""
    score: dict[str, Any]
    """``score``: delay_probability (calibrated P(late)), model severity, top_features (words), model_version,
    anomaly_score; read from the stored prediction (or scored now when the order has none)."""
    kpis: dict[str, Any]
    """``assess``: 30-day KPI context of the order's warehouse block, mode and importance."""
    severity: str
    """``assess``: the deviation's severity after the policy escalators (critical | warning | info)."""
    reasons: list[str]
    """``assess``: why this is a deviation, in words (thresholds and escalators that applied)."""
    policy_passages: list[dict[str, Any]]
    """``assess``: policy passages retrieved for the situation: {citation, title, text}; specialists cite them."""
    similar_cases: list[dict[str, Any]]
    """``assess``: past resolutions of similar deviations (the ``cases`` collection, apart from policies)."""
    plan: dict[str, Any]
    """``supervisor``: {specialists: [...], decided_by: rules | llm, rationale: [...], fallback: str | None}."""
    analyses: Annotated[dict[str, dict[str, Any]], merge_dicts]
    """Each specialist's analysis, keyed by specialist: {summary, findings: [...], tools: [...]}."""
    proposals: Annotated[list[dict[str, Any]], operator.add]
    """Each specialist's proposed actions (tools.actions.ProposedAction as dicts), in the order proposed."""
    verdicts: list[dict[str, Any]]
    """``guardrails``: one verdict per proposal (tools.actions.Verdict): allowed, automatic, required role, rule."""
    decisions: list[dict[str, Any]]
    """``approval``: the approver's decision per action that needed one, stamped with who decided and when."""
    executed: Annotated[list[dict[str, Any]], operator.add]
    """``execute``: the ledger writes done (tools.actions.ExecutedAction as dicts), each attributed and cited."""
    outcomes: list[dict[str, Any]]
    """``execute``: what became of every proposal: executed | rejected | refused (policy) | skipped, and why."""
    resolution: dict[str, Any]
    """``record``: the deviation's resolution (status, summary, actions), also stored on the deviation row."""
    notes: Annotated[list[str], operator.add]
    """What the workflow wants a reader to know (e.g. "the LLM supervisor failed; the rules decided")."""
