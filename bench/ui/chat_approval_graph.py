"""Chat + approval test graph for the Agent Chat UI browser check (``bench/ui/agent_chat_ui.sh``).

Three nodes over ``MessagesState``:

1. ``answer`` streams a fixed AI answer token by token from a fake chat model, so LangGraph's ``messages``
   stream mode (``messages-tuple`` on the wire) carries the tokens as the UI renders them;
2. ``approve`` stops on ``interrupt(...)`` with the project's shared approval request
   (:func:`graphs.common.approval.approval_request`): LangChain v1's ``action_requests`` + ``review_configs``
   plus the older agent-inbox ``HumanInterrupt`` keys (``action_request``, ``config.allow_*``,
   ``description``), the only shape the Agent Chat UI template on npm renders as an approval card;
3. ``report`` appends an AI message saying what was done and who decided, or nothing when the request was
   ignored (the thread then ends without the refund).

The server normalises every resume form to v1 decisions before the graph sees them, so ``approve`` receives
``{"decisions": [{"type": "approve" | "edit" | "reject", "edited_action"?: {"name", "args"}, "message"?: str,
"ignored"?: true, "actor": {"id", "role"}, "decided_at"}]}`` and ``report`` reads exactly that. The decision is
kept in one extra state key, ``decision``. No model, network or API key is needed.
"""

from __future__ import annotations

from typing import Any, NotRequired

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt

from graphs.common.approval import ApprovalAction, approval_request

ORDER_ID = "A-17"
AMOUNT = 120.0
ANSWER = f"Order {ORDER_ID} is 6 days late; I propose a refund of {AMOUNT:.2f}."

REFUND = ApprovalAction(
    name="issue_refund",
    args={"order_id": ORDER_ID, "amount": AMOUNT},
    description=f"Refund {AMOUNT:.2f} on order {ORDER_ID}: refunds above 50.00 need a person",
    amount=AMOUNT,
    currency="USD",
    required_role="approver",
    policy_action="refund",
    policy_reason="refunds above 50.00 need a person",
)


class State(MessagesState):
    """The chat messages plus the decision taken on the refund (set by ``approve``)."""

    decision: NotRequired[dict[str, Any]]


async def answer(state: State) -> dict[str, Any]:
    """Stream the proposal; a new fake model per call, since it consumes its message iterator."""
    model = GenericFakeChatModel(messages=iter([AIMessage(content=ANSWER)]))
    message = await model.ainvoke(state["messages"])
    return {"messages": [message]}


def approve(state: State) -> dict[str, Any]:
    """Ask a person to approve the refund; the run pauses here until resumed with the decisions."""
    resume = interrupt(approval_request([REFUND]))
    decisions = resume.get("decisions") if isinstance(resume, dict) else None
    if not isinstance(decisions, list) or len(decisions) != 1:
        raise ValueError(f'expected the server\'s {{"decisions": [one decision]}}, got {resume!r}')
    return {"decision": dict(decisions[0])}


def report(state: State) -> dict[str, Any]:
    """Say what was done with the refund, and who decided; say nothing when the request was ignored."""
    decision = state["decision"]
    if decision.get("ignored"):
        return {}
    who = decision["actor"]["id"]
    kind = decision["type"]
    if kind == "approve":
        text = f"Refund of {AMOUNT:.2f} on {ORDER_ID} approved by {who}"
    elif kind == "edit":
        amount = float(decision["edited_action"]["args"]["amount"])
        text = f"Refund of {amount:.2f} on {ORDER_ID} approved with edits by {who}"
    elif kind == "reject":
        text = f"Refund of {AMOUNT:.2f} on {ORDER_ID} rejected by {who}: {decision['message']}"
    else:
        raise ValueError(f"unexpected decision type {kind!r} in {decision!r}")
    return {"messages": [AIMessage(content=text)]}


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: Any = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_node("approve", approve)
    builder.add_node("report", report)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", "approve")
    builder.add_edge("approve", "report")
    builder.add_edge("report", END)
    return builder.compile(checkpointer=checkpointer, store=store)


graph = build_graph()
