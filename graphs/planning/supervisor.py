"""The supervisor: which specialists a plan needs, by rules, each with the reason in words.

The demand analyst always runs first (the other two plan from its forecast). The inventory planner runs for every
plan. The marketing planner runs unless the plan allows no discount (``max_discount`` 0 after the policy cap):
then there is nothing for it to propose, and the routing says so.
"""

from __future__ import annotations

from typing import Any

from graphs.planning.state import PlanningState


async def supervisor(state: PlanningState) -> dict[str, Any]:
    """Node: the specialists to run and why."""
    chosen = ["demand_analyst", "inventory_planner"]
    rationale = ["demand_analyst: every plan starts from a P50/P90 forecast over lead time + horizon",
                 "inventory_planner: order quantities for every item from that forecast"]  # fmt: skip
    if float(state.get("max_discount") or 0) > 0:
        chosen.append("marketing_planner")
        rationale.append(f"marketing_planner: promotions up to {float(state['max_discount']):.0%} where stock is "
                         "in excess or moves slowly")  # fmt: skip
    else:
        rationale.append("marketing_planner skipped: the plan allows no discount (max_discount 0)")
    return {"routing": {"specialists": chosen, "decided_by": "rules", "rationale": rationale}}
