"""The deviation workflow's specialists: the one list the graph is built from, and their deterministic policies.

Each specialist reads the whole case from the state (order, score, severity, reasons, KPI context, the policy
passages and similar cases retrieved for it), calls the read tools of its scope, and proposes actions. Nothing
is executed here: the guardrails check every proposal and a person approves what the automation role may not
do. Every number in a proposal comes from a tool or from the policy file; every proposal cites the passages it
relies on. ``customer`` runs after ``shipment``: the message it drafts describes the shipment decision.

Adding a specialist = one :class:`Specialist` entry in :data:`SPECIALISTS` plus its tools in ``tools.scopes``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from graphs.common.specialists import Specialist, SpecialistRegistry, SpecialistResult
from graphs.deviation.state import DeviationState
from tools.actions import ProposedAction
from tools.escalation import recommend_escalation
from tools.messaging import draft_message
from tools.payment import check_refund_eligibility
from tools.scopes import SCOPES
from tools.shipment import check_carrier_status, upgrade_options

NOT_DELIVERED = ("processing", "shipped", "delayed")


def cite(state: Mapping[str, Any], *words: str, limit: int = 2) -> tuple[str, ...]:
    """Citation ids of the retrieved passages that mention any of ``words`` (the best-ranked first)."""
    found = []
    for passage in state.get("policy_passages") or []:
        text = f"{passage.get('title', '')} {passage.get('text', '')}".lower()
        if any(w in text for w in words):
            found.append(str(passage["citation"]))
    return tuple(found[:limit])


async def shipment(state: Mapping[str, Any]) -> SpecialistResult:
    """Speed the parcel up along the best upgrade the policy opens to it (with the path's fee), else have the
    carrier expedite it; a delivered order has nothing left to change."""
    order, severity = state["order"], str(state["severity"])
    carrier = await check_carrier_status(order["order_id"])
    findings = [f"carrier {carrier.carrier_id or carrier.carrier_name}: {carrier.days_late} day(s) late against the "
                f"promise; claim eligible: {carrier.claim_eligible}"]  # fmt: skip
    used = ["check_carrier_status"]
    if order.get("order_status") not in NOT_DELIVERED:
        return SpecialistResult(summary=f"the order is {order.get('order_status')}: nothing left to change in its "
                                "shipment", findings=findings, tools_used=used)  # fmt: skip
    options = await upgrade_options(order["order_id"])
    used.append("upgrade_options")
    if options.options:
        best = options.options[0]
        fee = round(float(best["fee"]), 2)
        move = f"{best['from_mode']} to {best['to_mode']}" if best["kind"] == "mode_upgrade" else "priority handling"
        proposal = ProposedAction(
            action_id="shipment:upgrade_shipping_mode:1", agent="shipment", name="upgrade_shipping_mode",
            args={"order_id": order["order_id"], "kind": best["kind"], "from_mode": best["from_mode"],
                  "to_mode": best["to_mode"], "amount": fee},
            reason=f"{severity} delay risk: {move} for {fee:.2f} USD ({best['rule']})", amount=fee,
            citations=cite(state, "upgrade", "priority handling"),
        )  # fmt: skip
    else:
        findings += list(options.reasons)
        proposal = ProposedAction(
            action_id="shipment:reschedule_shipment:1", agent="shipment", name="reschedule_shipment",
            args={"order_id": order["order_id"]},
            reason=f"no upgrade is open to this parcel ({'; '.join(options.reasons)}): have the carrier expedite it",
            citations=cite(state, "reschedul", "carrier"),
        )  # fmt: skip
    return SpecialistResult(summary=proposal.reason, findings=findings, proposals=[proposal], tools_used=used)


def _message_kind(state: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """What the customer is told (the shipment decision proposed before), and the actions the message describes:
    it is sent only if they run."""
    by_name = {p["name"]: p["action_id"] for p in state.get("proposals") or [] if p.get("agent") == "shipment"}
    if "upgrade_shipping_mode" in by_name:
        return "upgrade", (by_name["upgrade_shipping_mode"],)
    if "reschedule_shipment" in by_name:
        return "reschedule", (by_name["reschedule_shipment"],)
    return "delay", ()


async def customer(state: Mapping[str, Any]) -> SpecialistResult:
    """Tell the customer what is being done, drafted from the policy's templates (channel by severity, length
    limits, one apology per window, nothing the policy forbids disclosing)."""
    order, severity = state["order"], str(state["severity"])
    kind, describes = _message_kind(state)
    draft = await draft_message(order["order_id"], severity, kind, "apologetic")
    if not draft.channels_allowed and kind not in ("upgrade",):
        return SpecialistResult(summary=f"no proactive message for a {severity} deviation",
                                tools_used=["draft_message"])  # fmt: skip
    proposal = ProposedAction(
        action_id="customer:send_notification:1", agent="customer", name="send_notification",
        args=draft.action_args(), reason=f"tell the customer by {draft.channel} ({draft.kind.replace('_', ' ')})",
        citations=tuple(dict.fromkeys([*cite(state, "communicat", "apolog"), *draft.citations])),
        depends_on=describes,
    )  # fmt: skip
    findings = [f"drafted a {draft.kind} for {draft.channel} ({len(draft.body.split())} words)", *draft.warnings]
    return SpecialistResult(summary=proposal.reason, findings=findings, proposals=[proposal],
                            tools_used=["draft_message"])  # fmt: skip


async def payment(state: Mapping[str, Any]) -> SpecialistResult:
    """The refund its tier allows when the paid order is late, else goodwill credit for a critical order still in
    transit; the amounts are the eligibility tool's."""
    order = state["order"]
    check = await check_refund_eligibility(order["order_id"])
    findings = [*check.reasons, *check.rules]
    used = ["check_refund_eligibility"]
    if check.eligible and check.max_amount > 0:
        amount = round(check.max_amount, 2)
        proposal = ProposedAction(
            action_id="payment:issue_refund:1", agent="payment", name="issue_refund",
            args={"order_id": order["order_id"], "amount": amount, "tier": check.tier},
            reason=f"{check.days_late} day(s) late: the {check.tier} tier refunds {check.refund_pct:g}% of "
                   f"{(check.amount_paid or 0):.2f} USD paid", amount=amount,
            citations=cite(state, "refund", "tier", "compensat"),
        )  # fmt: skip
        return SpecialistResult(summary=proposal.reason, findings=findings, proposals=[proposal], tools_used=used)
    if check.goodwill_max:
        amount = round(check.goodwill_max, 2)
        proposal = ProposedAction(
            action_id="payment:apply_store_credit:1", agent="payment", name="apply_store_credit",
            args={"order_id": order["order_id"], "amount": amount, "kind": "goodwill"},
            reason=f"goodwill store credit of {amount:.2f} USD while the critical order is in transit", amount=amount,
            citations=cite(state, "goodwill", "store credit"),
        )  # fmt: skip
        return SpecialistResult(summary=proposal.reason, findings=findings, proposals=[proposal], tools_used=used)
    return SpecialistResult(summary="no compensation is due", findings=findings, tools_used=used)


async def escalation(state: Mapping[str, Any]) -> SpecialistResult:
    """A ticket for the team the escalation policy routes this order to, at its severity's priority."""
    order = state["order"]
    advice = await recommend_escalation(order["order_id"])
    used = ["recommend_escalation"]
    if advice.priority is None:
        return SpecialistResult(summary="not a deviation the policy escalates", tools_used=used)
    why = "; ".join(advice.reasons)
    proposal = ProposedAction(
        action_id="escalation:create_ticket:1", agent="escalation", name="create_ticket",
        args={"order_id": order["order_id"], "team": advice.team, "priority": advice.priority,
              "summary": f"{advice.severity} deviation on order {order['order_id']}: "
                         f"{'; '.join(state.get('reasons') or [])}"},
        reason=f"{advice.priority} ticket for {advice.team} (acknowledge within {advice.acknowledge_hours} h, "
               f"resolve within {advice.resolve_hours} h): {why}", citations=cite(state, "escalat", "priority"),
    )  # fmt: skip
    return SpecialistResult(summary=proposal.reason, findings=list(advice.reasons), proposals=[proposal],
                            tools_used=used)  # fmt: skip


SPECIALISTS: tuple[Specialist, ...] = (
    Specialist("shipment", "Carrier status, rescheduling, shipping-mode upgrades and warehouse transfers for a late "
               "or at-risk parcel.", tuple(SCOPES["shipment"]), shipment),
    Specialist("customer", "Drafts and sends the customer message about the delay and what is being done about it.",
               tuple(SCOPES["customer"]), customer, after=("shipment",)),
    Specialist("payment", "Refund eligibility and compensation (refund tiers, store credit) for late paid orders.",
               tuple(SCOPES["payment"]), payment),
    Specialist("escalation", "Tickets, owners and priorities for cases that need a person: repeated care calls, "
               "warehouse clusters, high-value or anomalous critical orders.", tuple(SCOPES["escalation"]), escalation),
)  # fmt: skip

RESERVED = ("score", "assess", "supervisor", "dispatch", "guardrails", "approval", "execute", "record")
REGISTRY = SpecialistRegistry(SPECIALISTS, known_tools={t for tools in SCOPES.values() for t in tools},
                              reserved=RESERVED)  # fmt: skip


def run_specialist(name: str) -> Callable[[DeviationState], Awaitable[dict[str, Any]]]:
    """The graph node of specialist ``name``: its analysis and proposals, written into the state."""
    spec = REGISTRY[name]

    async def node(state: DeviationState) -> dict[str, Any]:
        result = await spec.act(state)
        proposals: Sequence[ProposedAction] = result.proposals
        return {
            "analyses": {name: {"summary": result.summary, "findings": result.findings, "tools": result.tools_used}},
            "proposals": [asdict(p) for p in proposals],
        }

    node.__name__ = name
    return node
