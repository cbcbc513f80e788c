"""Refund approval: prepare -> approve (approval interrupt, LangChain v1 shape) -> finalize; records who decided."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt


@dataclass
class Context:
    principal: dict[str, Any] | None = None


class State(TypedDict, total=False):
    order_id: str
    amount: float
    outcome: str
    refunded: float
    decided_by: str | None
    started_by: str | None
    decision: dict[str, Any]
    log: Annotated[list[str], operator.add]


def prepare(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    who = (runtime.context.principal or {}).get("id") if runtime.context else None
    return {"started_by": who, "log": ["prepare"]}


def approve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    amount = state["amount"]
    answer = interrupt(
        {
            "action_requests": [
                {
                    "name": "issue_refund",
                    "args": {"order_id": state["order_id"], "amount": amount},
                    "description": f"Refund {amount:.2f} on order {state['order_id']}",
                    "required_role": "approver",
                    "amount": amount,
                    "currency": "USD",
                    "policy_reason": "refunds above 50.00 need a person",
                    "policy_action": "refund",
                }
            ],
            "review_configs": [{"action_name": "issue_refund", "allowed_decisions": ["approve", "edit", "reject"]}],
        }
    )
    decision = answer["decisions"][0]
    who = (runtime.context.principal or {}).get("id") if runtime.context else None
    return {"decision": decision, "decided_by": who, "log": ["approve"]}


def finalize(state: State) -> dict[str, Any]:
    decision = state["decision"]
    if decision["type"] == "reject":
        return {"outcome": "rejected", "refunded": 0.0, "log": ["finalize"]}
    amount = (decision.get("edited_action") or {}).get("args", {}).get("amount", state["amount"])
    return {"outcome": "refunded", "refunded": float(amount), "log": ["finalize"]}


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: Any = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State, context_schema=Context)
    builder.add_node("prepare", prepare)
    builder.add_node("approve", approve)
    builder.add_node("finalize", finalize)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "approve")
    builder.add_edge("approve", "finalize")
    builder.add_edge("finalize", END)
    return builder.compile(checkpointer=checkpointer, store=store)


graph = build_graph()
