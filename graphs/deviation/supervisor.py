"""The supervisor: which specialists a deviation needs, decided by rules, or by an LLM when one is configured.

The rules read the state the earlier nodes filled in (severity, reasons, the order's status and payment, days
late, the customer's recent contacts) and the policy; each specialist they pick comes with the rule that picked
it, in words. The LLM policy sees the same context (customer data redacted) and the specialists' descriptions,
and answers with tool calls naming specialists; its answer is validated (registered names only, at least one)
and, when it fails in any way, the rules decide and the plan says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import StructuredTool

from graphs.common.specialists import SpecialistRegistry
from graphs.deviation.specialists import REGISTRY
from graphs.deviation.state import DeviationState
from rag.policy import Policy, severity_at_least
from tools.deps import current
from tools.redact import redact

log = logging.getLogger(__name__)

NOT_DELIVERED = ("processing", "shipped", "delayed")


def rule_plan(state: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    """The deterministic plan: ``{specialists, decided_by: "rules", rationale}``, specialists in registry order."""
    order: Mapping[str, Any] = state.get("order") or {}
    severity = str(state.get("severity") or "info")
    reasons = " ".join(state.get("reasons") or []).lower()
    chosen: dict[str, str] = {}
    status = str(order.get("order_status") or "processing")
    days_late = int(order.get("days_late") or 0)
    if status in NOT_DELIVERED and severity_at_least(severity, policy.shipping.upgrade.min_severity):
        chosen["shipment"] = (f"the order is still {status} and the deviation is {severity}: the shipment can "
                              "still be sped up or rescheduled")  # fmt: skip
    elif days_late >= policy.carrier_selection.claim_after_days_late:
        chosen["shipment"] = (f"the parcel is {days_late} days late, past the carrier claim threshold of "
                              f"{policy.carrier_selection.claim_after_days_late} days")  # fmt: skip
    care_calls = int(order.get("customer_care_calls") or 0)
    called_often = care_calls > policy.escalation.care_calls_over
    if policy.communication.channels_for(severity) and not called_often:  # else a person calls them back
        chosen["customer"] = (f"a {severity} deviation is communicated to the customer "
                              f"({', '.join(policy.communication.channels_for(severity))})")  # fmt: skip
    paid = str(order.get("payment_status") or "") in policy.refunds.eligible_payment_status
    if paid and days_late >= 1:
        chosen["payment"] = f"the order is paid and {days_late} day(s) late: compensation is due under the refund tiers"
    elif paid and severity_at_least(severity, policy.store_credit.goodwill.min_severity) and status in NOT_DELIVERED:
        chosen["payment"] = "a paid order with a critical deviation still in transit qualifies for goodwill credit"
    if called_often:
        chosen["escalation"] = (f"{care_calls} customer care calls, more than the policy's "
                                f"{policy.escalation.care_calls_over}: the care lead takes the customer over, "
                                "no more automated messages")  # fmt: skip
    elif "warehouse" in reasons and "cluster" in reasons:
        chosen["escalation"] = "critical deviations cluster in the order's warehouse block: management is told"
    elif severity == "critical" and ("order value" in reasons or "anomal" in reasons):
        chosen["escalation"] = "a critical deviation on a high-value or anomalous order is escalated"
    if not chosen:
        chosen["customer"] = "no other specialist applies: the customer is kept informed"
    return {
        "specialists": [name for name in ("shipment", "customer", "payment", "escalation") if name in chosen],
        "decided_by": "rules",
        "rationale": [f"{name}: {why}" for name, why in chosen.items()],
        "fallback": None,
    }


def llm_choice(tool_calls: Sequence[Mapping[str, Any]], registered: Sequence[str]) -> list[str]:
    """The specialists named by an LLM's tool calls; raises ValueError when the answer is unusable."""
    names = [str(call.get("name", "")) for call in tool_calls]
    unknown = [n for n in names if n not in registered]
    if unknown:
        raise ValueError(f"the model named unknown specialist(s) {unknown}")
    if not names:
        raise ValueError("the model chose no specialist")
    return [n for n in registered if n in names]


SYSTEM = (
    "You supervise a fulfillment team resolving a delivery deviation. Read the case and call one tool for each "
    "specialist the case needs (several if needed, none twice). Only the listed specialists exist."
)


def _context(state: Mapping[str, Any]) -> dict[str, Any]:
    """What the LLM sees: the facts the rules use, customer data redacted."""
    return redact({
        "severity": state.get("severity"), "reasons": state.get("reasons"), "order": state.get("order"),
        "score": {k: (state.get("score") or {}).get(k) for k in ("delay_probability", "top_features")},
        "kpis": state.get("kpis"),
    })  # fmt: skip


def _choice_tool(name: str, description: str) -> StructuredTool:
    """A tool without arguments whose call means "this specialist is needed"."""

    def choose() -> str:
        return name

    return StructuredTool.from_function(func=choose, name=name, description=description)


async def llm_plan(state: Mapping[str, Any], registry: SpecialistRegistry, model: Any) -> dict[str, Any]:
    """The LLM's plan; raises on any failure (the caller falls back to the rules)."""
    tools = [_choice_tool(name, spec.description) for name, spec in registry.items()]
    bound = model.bind_tools(tools, tool_choice="required")
    answer = await bound.ainvoke([SystemMessage(SYSTEM), HumanMessage(json.dumps(_context(state), default=str))])
    chosen = llm_choice(getattr(answer, "tool_calls", None) or [], list(registry))
    return {"specialists": chosen, "decided_by": "llm", "rationale": [f"{n}: chosen by the model" for n in chosen],
            "fallback": None}  # fmt: skip


async def plan_for(state: Mapping[str, Any], registry: SpecialistRegistry) -> dict[str, Any]:
    """The supervisor's decision: the LLM's when a model is configured and answers usably, else the rules'."""
    deps = current()
    rules = rule_plan(state, deps.policy)
    if deps.llm is None:
        return rules
    try:
        return await llm_plan(state, registry, deps.llm)
    except Exception as exc:  # any failure of the model: the rules decide, and the plan says why
        log.warning("LLM supervisor failed; the rules decide", extra={"error": f"{type(exc).__name__}: {exc}"})
        return {**rules, "fallback": f"the LLM supervisor failed ({type(exc).__name__}: {exc}); the rules decided"}


async def supervisor(state: DeviationState) -> dict[str, Any]:
    """Node: decide which specialists run."""
    plan = await plan_for(state, REGISTRY)
    return {"plan": plan, "notes": [plan["fallback"]] if plan.get("fallback") else []}
