"""``approval``, then ``finalize`` or ``rejected``: a person decides the plan; what they approve is written, once.

``approval`` interrupts with one action request per thing the plan would do: ``place_purchase_order`` for each
line with an order (amount = its cost, the policy's ``purchase_order`` authority) and ``start_promotion`` for each
line with a discount (amount = the discount in percent, the ``promotion_discount`` authority), in the approval
schema every client of the server renders, with the plan's totals and its reflection alongside. A plan with
nothing to order or promote asks nothing and ends ``no_action``.

An edit may change only a purchase order's ``quantity`` or a promotion's ``discount``; the amount is derived from
them (an edit whose ``amount`` disagrees is refused, so nobody approves a large order under a small amount), and
the edited line is checked again against the plan's constraints (budget, deepest discount, the pricing rule's
margin) and against the decider's authority for the new amount. A refused edit writes nothing, and the outcome
says why. When every action is rejected the plan is ``rejected``, with the reason; a rejected plan never reaches
``finalize``. ``finalize`` writes each approved purchase order and promotion with an idempotency key of thread +
action, attributed to the approver, so a re-executed run writes nothing twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import Any, Literal

from langgraph.config import get_config
from langgraph.types import interrupt

from graphs.common.approval import ApprovalAction, approval_request
from graphs.planning.state import PlanningState
from tools.deps import current
from tools.ledger import Attribution
from tools.planning import place_purchase_order, set_plan_status, start_promotion

PO, PROMO = "place_purchase_order", "start_promotion"
EDITABLE = {PO: "quantity", PROMO: "discount"}
"""The one argument an approver may change per action."""
MAX_EDIT_FACTOR = 10
"""An edited order may be at most this many times the planner's order-up-to level (a typo guard)."""
CITATIONS = {PO: ["policy:planning#budget", "policy:planning#safety-stock"],
             PROMO: ["policy:planning#discount-limits", "policy:planning#promotion-length"]}  # fmt: skip


def plan_actions(state: PlanningState) -> list[dict[str, Any]]:
    """The actions the plan asks approval for, in line order: ``{action_id, name, args, line}``."""
    actions = []
    for line in state.get("lines") or []:
        sku = line["item_id"]
        if line["recommended_order_qty"] > 0:
            actions.append({"action_id": f"po:{sku}", "name": PO, "line": line, "args": {
                "item_id": sku, "quantity": line["recommended_order_qty"], "unit_cost": line["unit_cost"],
                "amount": line["cost"], "expected_on": line["expected_on"]}})  # fmt: skip
        if line["recommended_discount"] > 0:
            promo = line["promotion"] or {}
            actions.append({"action_id": f"promo:{sku}", "name": PROMO, "line": line, "args": {
                "item_id": sku, "discount": line["recommended_discount"],
                "amount": round(100 * line["recommended_discount"], 1), "starts_on": promo.get("starts_on"),
                "ends_on": promo.get("ends_on")}})  # fmt: skip
    return actions


def _approval_action(action: dict[str, Any], needs_review: bool) -> ApprovalAction:
    policy = current().policy.approval
    line, args = action["line"], action["args"]
    if action["name"] == PO:
        key, amount, currency = "purchase_order", float(args["amount"]), "USD"
        what = f"Order {args['quantity']} x {line['name']} (item {line['item_id']}) for {amount:,.2f}"
    else:
        key, amount, currency = "promotion_discount", float(args["amount"]), "pct"
        what = f"Discount {line['name']} (item {line['item_id']}) by {amount:g} % from {args['starts_on']} to " \
               f"{args['ends_on']}"  # fmt: skip
    role = policy.required_role(key, amount) or "admin"
    why = f"{what}. {line['rationale']} (confidence {line['confidence']:.2f})"
    if needs_review:
        why += " The plan's confidence is below the policy threshold: review it closely."
    return ApprovalAction(name=action["name"], args=dict(args), description=why, amount=amount, currency=currency,
                          required_role=role if role in ("operator", "approver", "admin") else "admin",
                          policy_action=key, policy_reason="policy:planning#plan-review: every plan waits for "
                          "human approval before any purchase order or promotion is written",
                          citations=CITATIONS[action["name"]])  # fmt: skip


def _thread_id() -> str:
    return str(get_config()["configurable"]["thread_id"])


async def approval(state: PlanningState) -> dict[str, Any]:
    """Node: ask for a decision on every action of the plan; file the stamped decisions in action order."""
    actions = plan_actions(state)
    summary, reflection = state.get("summary") or {}, state.get("reflection") or {}
    if not actions:
        return {"decisions": []}
    await set_plan_status(_thread_id(), "pending_approval", total_cost=summary.get("total_cost"),
                          line_count=len(state.get("lines") or []),
                          confidence=reflection.get("confidence"))  # fmt: skip
    request = approval_request([_approval_action(a, bool(reflection.get("needs_review"))) for a in actions])
    request["plan"] = {"plan_id": _thread_id(), "store_id": state["store_id"], "summary": summary,
                       "reflection": reflection, "lines": state.get("lines") or []}  # fmt: skip
    answer = interrupt(request)
    decisions = answer.get("decisions") if isinstance(answer, dict) else None
    if not isinstance(decisions, list) or len(decisions) != len(actions):
        raise ValueError(f"expected {len(actions)} decision(s) from the approval, got {answer!r}")
    return {"decisions": [{"action_id": a["action_id"], **d} for a, d in zip(actions, decisions, strict=True)]}


def after_approval(state: PlanningState) -> Literal["finalize", "rejected"]:
    """``rejected`` when a person rejected every action; else ``finalize`` (also for a plan with no actions)."""
    decisions = state.get("decisions") or []
    if decisions and all(d.get("type") == "reject" for d in decisions):
        return "rejected"
    return "finalize"


def max_order_qty(line: dict[str, Any]) -> int:
    """The largest quantity an approver may edit a line's order to (a typo guard on the order-up-to level)."""
    return MAX_EDIT_FACTOR * max(1, math.ceil(float(line["order_up_to"])))


def max_discount(state: Mapping[str, Any], line: dict[str, Any]) -> float:
    """The deepest discount an approver may edit a line's promotion to: the plan's and the pricing rule's limit."""
    return min(float(state["max_discount"]), float(state["items_facts"][str(line["item_id"])]["max_discount"]))


def edit_problem(state: PlanningState, name: str, line: dict[str, Any], value: Any, role: str) -> str | None:
    """Why an edited quantity (``place_purchase_order``) or discount (``start_promotion``) may not stand, or None.

    ``role`` is the decider's: the edited amount must be within its authority."""
    policy = current().policy
    if name == PO:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"quantity must be a whole number of units >= 1 (reject the order to drop it), got {value!r}"
        ceiling = max_order_qty(line)
        if value > ceiling:
            return f"quantity {value} is over {MAX_EDIT_FACTOR}x the item's order-up-to level ({ceiling} units)"
        amount = round(value * float(line["unit_cost"]), 2)
        others = sum(float(other["cost"]) for other in state.get("lines") or [] if other["item_id"] != line["item_id"])
        if others + amount > float(state["budget"]) + 0.005:
            return f"quantity {value} costs {amount:,.2f}; with the other lines' {others:,.2f} the plan would spend " \
                   f"{others + amount:,.2f}, over its budget of {float(state['budget']):,.2f}"  # fmt: skip
        if not policy.approval.allows(role, "purchase_order", amount):
            return f"a purchase order of {amount:,.2f} is beyond the {role} authority"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"discount must be a number, got {value!r}"
    facts = state["items_facts"][str(line["item_id"])]
    limit = max_discount(state, line)
    if not 0 < value <= limit + 1e-9:
        return f"discount must be above 0 and at most {limit:.0%} (the plan's, pricing rule's and policy's limit); " \
               "reject the promotion to drop it"  # fmt: skip
    min_margin = max(float(facts["min_margin"]), policy.planning.min_margin_pct / 100)
    price = float(facts["unit_price"]) * (1 - value)
    if price <= 0 or (price - float(facts["unit_cost"])) / price < min_margin - 1e-9:
        return f"a {value:.0%} discount leaves less than the {min_margin:.0%} minimum margin over cost"
    if not policy.approval.allows(role, "promotion_discount", round(100 * value, 1)):
        return f"a {value:.0%} discount is beyond the {role} authority"
    return None


def _decided(state: PlanningState, action: dict[str, Any], decision: dict[str, Any]) -> tuple[Any, str | None]:
    """The value to write (quantity or discount) after the decision, or why nothing is written."""
    key = EDITABLE[action["name"]]
    if decision.get("type") == "reject":
        return None, f"rejected: {decision.get('message') or 'no reason given'}"
    if decision.get("type") != "edit":
        return action["args"][key], None
    args = dict((decision.get("edited_action") or {}).get("args") or {})
    changed = sorted(k for k in set(args) | set(action["args"]) if k not in (key, "amount")
                     and args.get(k, action["args"].get(k)) != action["args"].get(k))  # fmt: skip
    if changed:
        return None, f"edit refused: only {key} may change, not {', '.join(changed)}"
    value = args.get(key, action["args"][key])
    if isinstance(value, int | float) and not isinstance(value, bool) and "amount" in args:
        derived = round(value * float(action["line"]["unit_cost"]), 2) if action["name"] == PO else \
            round(100 * value, 1)  # fmt: skip
        if abs(float(args["amount"]) - derived) > 0.011:
            return None, f"edit refused: amount {args['amount']} does not match the {key} (it would be {derived})"
    role = str((decision.get("actor") or {}).get("role") or "viewer")
    problem = edit_problem(state, action["name"], action["line"], value, role)
    if problem is not None:
        return None, f"edit refused: {problem}"
    return value, None


async def finalize(state: PlanningState) -> dict[str, Any]:
    """Node: write the approved purchase orders and promotions, once each; the plan is approved (or no_action)."""
    thread_id = _thread_id()
    decisions = {d["action_id"]: d for d in state.get("decisions") or []}
    store = int(state["store_id"])
    results = []
    for action in plan_actions(state):
        decision = decisions.get(action["action_id"]) or {}
        value, why = _decided(state, action, decision)
        entry: dict[str, Any] = {"action_id": action["action_id"], "name": action["name"],
                                 "item_id": action["args"]["item_id"]}  # fmt: skip
        if why is not None:
            results.append(entry | {"outcome": "not_written", "why": why})
            continue
        actor = (decision.get("actor") or {}).get("id") or "unknown"
        agent = "inventory_planner" if action["name"] == PO else "marketing_planner"
        attribution = Attribution(idempotency_key=f"{thread_id}:{action['action_id']}", actor=str(actor), agent=agent,
                                  policy_rule="planning#plan-review", thread_id=thread_id,
                                  citations=tuple(CITATIONS[action["name"]]))  # fmt: skip
        if action["name"] == PO:
            arrives = date.fromisoformat(action["args"]["expected_on"])
            write = await place_purchase_order(store, int(action["args"]["item_id"]), int(value),
                                               float(action["line"]["unit_cost"]), arrives, attribution)  # fmt: skip
            entry |= {"outcome": "written", "quantity": int(value), "po_id": write.ledger_id,
                      "cost": round(int(value) * float(action["line"]["unit_cost"]), 2)}  # fmt: skip
        else:
            write = await start_promotion(store, int(action["args"]["item_id"]), float(value),
                                          date.fromisoformat(action["args"]["starts_on"]),
                                          date.fromisoformat(action["args"]["ends_on"]), attribution)  # fmt: skip
            entry |= {"outcome": "written", "discount": float(value), "promotion_id": write.ledger_id}
        entry["edited"] = decision.get("type") == "edit"
        entry["by"] = actor
        results.append(entry)
    deciders = sorted({str((d.get("actor") or {}).get("id")) for d in decisions.values() if d.get("actor")})
    comment = next((str(d["message"]) for d in decisions.values() if d.get("message")), None)
    status = "approved" if decisions else "no_action"
    spent = round(sum(r.get("cost", 0.0) for r in results), 2)
    await set_plan_status(thread_id, status, total_cost=spent, line_count=len(state.get("lines") or []),
                          **({"decided_by": ", ".join(deciders)} if deciders else {}),
                          **({"decision_comment": comment} if comment else {}))  # fmt: skip
    return {"outcome": {"status": status, "decided_by": deciders, "comment": comment, "total_cost": spent,
                        "actions": results}}  # fmt: skip


async def rejected(state: PlanningState) -> dict[str, Any]:
    """Node: every action was rejected; nothing is written and the plan keeps the reason."""
    decisions = state.get("decisions") or []
    deciders = sorted({str((d.get("actor") or {}).get("id")) for d in decisions if d.get("actor")})
    reason = next((str(d["message"]) for d in decisions if d.get("message")), "no reason given")
    await set_plan_status(_thread_id(), "rejected", decided_by=", ".join(deciders) or "unknown",
                          decision_comment=reason)  # fmt: skip
    return {"outcome": {"status": "rejected", "decided_by": deciders, "comment": reason, "total_cost": 0.0,
                        "actions": [{"action_id": d["action_id"], "outcome": "not_written", "why": "rejected"}
                                    for d in decisions]}}  # fmt: skip
