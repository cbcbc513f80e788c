"""A chat that proposes a refund and waits for a person, the way Agent Chat UI and Agent Inbox see it.

``lookup`` (a compiled subgraph, so ``stream_subgraphs`` has a namespace to show) reads the order and amount
from the last user message (``refund 120.00 on order A-17``; both optional); ``answer`` streams a fake
model's reply token by token (both write a ``custom`` status event); ``review`` asks for approval with a
LangChain v1 ``HumanInTheLoopMiddleware`` request plus the policy fields the server checks; ``outcome`` says
what was decided and by whom.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt

from graphs.common.approval import ApprovalAction
from graphs.common.approval import approval_request as build_request

DEFAULT_ORDER, DEFAULT_AMOUNT = "A-17", 120.0
ORDER = r"\b[A-Z]-\d+\b"


class State(MessagesState, total=False):
    order: dict[str, Any]
    decision: dict[str, Any]


def _last_human_text(messages: list[AnyMessage]) -> str:
    human = [m for m in messages if isinstance(m, HumanMessage)]
    return human[-1].text if human else ""


def fetch_order(state: State) -> dict[str, Any]:
    text = _last_human_text(state["messages"])
    order = re.search(ORDER, text)
    amount = re.search(r"\d+(?:\.\d+)?", re.sub(ORDER, "", text))
    get_stream_writer()({"status": "looking up the order"})
    return {
        "order": {
            "order_id": order.group(0) if order else DEFAULT_ORDER,
            "amount": float(amount.group(0)) if amount else DEFAULT_AMOUNT,
            "late_deliveries": 2,
        }
    }


def build_lookup() -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    builder.add_node("fetch_order", fetch_order)
    builder.add_edge(START, "fetch_order")
    builder.add_edge("fetch_order", END)
    return builder.compile()


async def answer(state: State) -> dict[str, Any]:
    order = state["order"]
    get_stream_writer()({"status": f"checking order {order['order_id']}"})
    reply = (
        f"Order {order['order_id']} arrived late {order['late_deliveries']} times, "
        f"so I propose a refund of {order['amount']:.2f} USD."
    )
    model = GenericFakeChatModel(messages=iter([AIMessage(reply)]))
    return {"messages": [await model.ainvoke(state["messages"])]}


def approval_request(order: dict[str, Any]) -> dict[str, Any]:
    """The interrupt value, from the project's builder: LangChain v1 ``HITLRequest`` plus the policy fields."""
    amount, order_id = order["amount"], order["order_id"]
    return build_request([
        ApprovalAction("issue_refund", {"order_id": order_id, "amount": amount}, f"Refund {amount:.2f} on order "
                       f"{order_id}", amount=amount, policy_action="refund",
                       policy_reason="refunds above 50.00 need a person")
    ])  # fmt: skip


def review(state: State) -> dict[str, Any]:
    answer_ = interrupt(approval_request(state["order"]))
    return {"decision": answer_["decisions"][0]}


def outcome(state: State) -> dict[str, Any]:
    decision, order = state["decision"], state["order"]
    who = (decision.get("actor") or {}).get("id", "unknown")
    if decision["type"] == "reject":
        text = f"Refund on order {order['order_id']} not issued: {decision.get('message')} (rejected by {who})."
    else:
        args = decision["edited_action"]["args"] if decision["type"] == "edit" else order
        verb = "edited" if decision["type"] == "edit" else "approved"
        text = f"Refunded {float(args['amount']):.2f} on order {args['order_id']} ({verb} by {who})."
    return {"messages": [AIMessage(text)]}


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: Any = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    builder.add_node("lookup", build_lookup())
    builder.add_node("answer", answer)
    builder.add_node("review", review)
    builder.add_node("outcome", outcome)
    builder.add_edge(START, "lookup")
    builder.add_edge("lookup", "answer")
    builder.add_edge("answer", "review")
    builder.add_edge("review", "outcome")
    builder.add_edge("outcome", END)
    return builder.compile(checkpointer=checkpointer, store=store)


graph = build_graph()
