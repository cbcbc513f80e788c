"""The approver's brief of a plan: written from a template, or by an LLM when one is configured, and then held to
the plan's own numbers.

The template (:func:`rule_brief`) states the plan's totals and its reflection in one paragraph. The LLM policy
(:func:`llm_brief`) is shown the same facts (lines, totals, budget, confidence, risks, bias checks) and answers
with one ``record_brief`` tool call: a summary and at most five further risks, each with a severity (low | medium
| high) and a mitigation. Its answer is refused, and the template used with a note saying why, when it breaks the
shape or states any number that is not in the facts it was given (:func:`ungrounded`): the model may argue about
the plan, it may not invent figures.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from graphs.common.grounding import ungrounded

log = logging.getLogger(__name__)

class LlmRisk(BaseModel):
    risk: str = Field(min_length=1, max_length=300)
    severity: Literal["low", "medium", "high"]
    mitigation: str = Field(min_length=1, max_length=300)


class LlmBrief(BaseModel):
    """What the model must answer with (the ``record_brief`` tool's arguments)."""

    summary: str = Field(min_length=1, max_length=1200, description="The plan in a few sentences, for the approver.")
    risks: list[LlmRisk] = Field(default_factory=list, max_length=5, description="Risks the plan's review missed.")


SYSTEM = (
    "You review a store replenishment and promotion plan for the person who must approve it. Call record_brief "
    "once: a short summary of what the plan does and why, and any risks the automatic review missed. Use only "
    "numbers that appear in the facts; do not compute new ones."
)


def facts(state: Mapping[str, Any]) -> dict[str, Any]:
    """What the model is shown: the plan's lines (without the daily forecasts), totals and reflection."""
    keep = ("item_id", "name", "recommended_order_qty", "recommended_discount", "cost", "confidence", "cut",
            "stockout_risk", "forecast_source", "rationale")  # fmt: skip
    return {
        "store_id": state.get("store_id"), "horizon_days": state.get("horizon_days"),
        "lead_time_days": (state.get("constraints") or {}).get("lead_time_days"), "budget": state.get("budget"),
        "lines": [{k: line.get(k) for k in keep} for line in state.get("lines") or []],
        "summary": state.get("summary"), "reflection": state.get("reflection"),
    }  # fmt: skip


def rule_brief(state: Mapping[str, Any]) -> dict[str, Any]:
    """The template: the plan's totals and the reflection's verdict."""
    summary, reflection = state.get("summary") or {}, state.get("reflection") or {}
    text = (f"Store {state.get('store_id')}, {state.get('horizon_days')} days: {summary.get('orders', 0)} purchase "
            f"order(s) for {float(summary.get('total_cost') or 0):,.2f} of a {float(state.get('budget') or 0):,.2f} "
            f"budget and {summary.get('promotions', 0)} promotion(s). {reflection.get('rationale', '')}")  # fmt: skip
    return {"by": "rules", "summary": text.strip(), "risks": []}


async def llm_brief(state: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """The model's brief; raises ValueError when it is unusable (the caller falls back to the template)."""
    known = facts(state)
    tool = StructuredTool.from_function(func=lambda **_: "recorded", name="record_brief", args_schema=LlmBrief,
                                        description="Record the brief for the approver.")  # fmt: skip
    bound = model.bind_tools([tool], tool_choice="required")
    answer = await bound.ainvoke([SystemMessage(SYSTEM), HumanMessage(json.dumps(known, default=str))])
    calls = [c for c in getattr(answer, "tool_calls", None) or [] if c.get("name") == "record_brief"]
    if len(calls) != 1:
        raise ValueError(f"expected one record_brief call, got {len(calls)}")
    brief = LlmBrief.model_validate(calls[0].get("args") or {})
    said = " ".join([brief.summary, *(f"{r.risk} {r.mitigation}" for r in brief.risks)])
    invented = ungrounded(said, known)
    if invented:
        raise ValueError(f"the brief states numbers that are not in the plan: {', '.join(invented[:5])}")
    return {"by": "llm", "summary": brief.summary, "risks": [r.model_dump() | {"source": "llm"} for r in brief.risks]}


async def brief_for(state: Mapping[str, Any], model: Any | None) -> tuple[dict[str, Any], list[str]]:
    """The brief (the model's when one is configured and answers usably, else the template's) and any note."""
    if model is None:
        return rule_brief(state), []
    try:
        return await llm_brief(state, model), []
    except Exception as exc:  # any failure of the model: the template, and the state says why
        log.warning("LLM plan brief refused; the template writes it", extra={"error": f"{type(exc).__name__}: {exc}"})
        return rule_brief(state), [f"the LLM brief was not used ({type(exc).__name__}: {exc}); the template wrote it"]
