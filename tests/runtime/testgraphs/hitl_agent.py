"""A LangChain v1 agent whose refund tool waits for a person: ``create_agent`` with ``HumanInTheLoopMiddleware``.

The fake model reads ``refund 120.00 on order A-17`` from the last user message and calls ``issue_refund``
with those arguments; once the tool has answered (or a reviewer rejected the call) it gives a final answer.
It decides from the messages alone, so one model serves every thread, and it needs no network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.base import BaseCheckpointSaver

ORDER = r"\b[A-Z]-\d+\b"
FINAL_APPROVED = "The refund went through: "
FINAL_REJECTED = "I did not issue the refund: "


@tool
def issue_refund(order_id: str, amount: float) -> str:
    """Refund ``amount`` on order ``order_id``."""
    return f"refunded {amount:.2f} on order {order_id}"


def requested_refund(messages: list[BaseMessage]) -> dict[str, Any]:
    """The order and amount the last user message asks to refund (``A-17`` and ``120.0`` when it names none)."""
    human = [m for m in messages if isinstance(m, HumanMessage)]
    text = human[-1].text if human else ""
    order = re.search(ORDER, text)
    amount = re.search(r"\d+(?:\.\d+)?", re.sub(ORDER, "", text))
    return {"order_id": order.group(0) if order else "A-17", "amount": float(amount.group(0)) if amount else 120.0}


class RefundModel(BaseChatModel):
    """Calls ``issue_refund`` for the refund the user asks for, then answers with the tool's result."""

    @property
    def _llm_type(self) -> str:
        return "fake-refund-model"

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            prefix = FINAL_REJECTED if last.status == "error" else FINAL_APPROVED
            message = AIMessage(prefix + last.text)
        else:
            args = requested_refund(messages)
            call = {"name": "issue_refund", "args": args, "id": f"call-refund-{args['order_id']}", "type": "tool_call"}
            message = AIMessage("", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=message)])


def describe(tool_call: Any, state: Any, runtime: Any) -> str:
    args = tool_call["args"]
    return f"Refund {float(args['amount']):.2f} on order {args['order_id']}"


def build_graph(checkpointer: BaseCheckpointSaver[Any] | None = None, store: Any = None) -> Any:
    review = HumanInTheLoopMiddleware(
        interrupt_on={"issue_refund": {"allowed_decisions": ["approve", "edit", "reject"], "description": describe}}
    )
    return create_agent(
        model=RefundModel(), tools=[issue_refund], middleware=[review], checkpointer=checkpointer, store=store
    )


graph = build_graph()
