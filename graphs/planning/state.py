"""The state of a ``planning`` thread: the request, what each specialist found, the plan put up for approval, the
decision and what was written.

The thread is the plan: its checkpoint history is the audit trail (``GET /plans/{id}/events`` is derived from it),
so each field says what it holds and which node writes it. Values are plain JSON. ``inventory_planner`` and
``marketing_planner`` run in parallel and write their own keys; per-specialist maps merge through the reducer.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import TypedDict


def merge_dicts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer for per-specialist maps: each parallel branch adds its own key."""
    return {**(left or {}), **(right or {})}


class PlanConstraints(TypedDict):
    lead_time_days: int
    """Days from ordering to arrival (0: arrives before the first day's sales)."""
    budget_limit: float
    """Most the plan's purchase orders may cost in total (also capped by the policy's per-plan budget)."""
    max_discount: float
    """Deepest discount a promotion may have, as a fraction (also capped by the policy and the pricing rules)."""


class PlanItem(TypedDict):
    item_id: int
    """The product's sku."""
    current_stock: int
    """Units on hand now, as the store counts them (replaces the inventory table's figure for this plan)."""


class PlanningInput(TypedDict):
    """The RIMAS ``CreatePlanRequest``: what a plan starts from."""

    store_id: int
    horizon_days: int
    constraints: PlanConstraints
    items: list[PlanItem]


class PlanningState(PlanningInput, total=False):
    """A planning thread's state."""

    store: dict[str, Any]
    """``intake``: the store (id, name, city, region)."""
    items_facts: dict[str, dict[str, Any]]
    """``intake``: per sku (as text): catalog, stock (the request's), on order, lead time, pricing rule, history."""
    starts_on: str
    """``intake``: the plan's first day (ISO date): the day after the latest recorded sales."""
    budget: float
    """``intake``: the budget the plan may spend: the request's limit, capped by the policy's per-plan budget."""
    max_discount: float
    """``intake``: the deepest discount allowed: the request's, capped by the policy."""
    routing: dict[str, Any]
    """``supervisor``: {specialists: [...], decided_by: rules, rationale: [...]}."""
    analyses: Annotated[dict[str, dict[str, Any]], merge_dicts]
    """Each specialist's analysis, keyed by specialist: {summary, findings: [...], tools: [...]}."""
    forecasts: dict[str, dict[str, Any]]
    """``demand_analyst``: per sku: daily p50/p90 over lead time + horizon, totals, source (model | fallback), model
    version, trend and weekly pattern in words, confidence 0-1."""
    inventory_lines: dict[str, dict[str, Any]]
    """``inventory_planner``: per sku: order quantity, order-up-to, safety stock, reorder point, EOQ, stock-out risk,
    the marginal value of each block of units (for the budget), rationale."""
    marketing_lines: dict[str, dict[str, Any]]
    """``marketing_planner``: per sku: the discount (0 = none) with elasticity, expected lift, margin impact,
    measurement design, rationale."""
    lines: list[dict[str, Any]]
    """``consolidate``: the plan lines, one per item: sku, order_qty, unit_cost, cost, discount, promotion window,
    rationale, confidence, and what the budget cut and why."""
    summary: dict[str, Any]
    """``consolidate``: total cost, budget, whether it bound, lines cut, model version."""
    reflection: dict[str, Any]
    """``reflection``: confidence 0-1 with rationale, risks {risk, severity, mitigation}, bias checks, the policy's
    threshold and whether the plan needs a closer review."""
    decisions: list[dict[str, Any]]
    """``approval``: the approver's decision per action (stamped with who and when), in action order."""
    outcome: dict[str, Any]
    """``finalize`` / ``rejected``: status (approved | rejected | no_action), who decided, comment, and per line
    what was written (purchase order and promotion ids) or why not."""
    notes: Annotated[list[str], operator.add]
    """What the workflow wants a reader to know."""
