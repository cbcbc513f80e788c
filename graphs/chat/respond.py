"""``respond``: the turn's answer becomes the AI message, its structured part a ``custom`` stream event.

The message's text is the answer's text, every number in it formatted from a tool result. The ``custom`` event
(``{"type": "chat.answer", ...}``) carries what a UI draws: the table (columns, rows, units, period), the policy
citations, the tools called and the query run; the same dict is kept in the state's ``answer``. The focus moves on
to what this answer was about, so the next question can follow up on it.
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from graphs.chat.context import ChatContext
from graphs.chat.specialists import DIRECT_INTENTS
from graphs.chat.state import ChatState

STRUCTURED: tuple[str, ...] = ("kind", "table", "citations", "tools", "sql", "focus", "by", "fallback")


def next_focus(state: ChatState) -> dict[str, Any]:
    """The focus after this answer: its intent and entities (without the unresolved ones) and the ids it named."""
    previous = state.get("focus") or {}
    seen = state.get("understanding") or {}
    answer = state.get("answer") or {}
    intent = seen.get("intent")
    if not intent or intent in DIRECT_INTENTS or not seen.get("entities"):
        return previous
    entities = {k: v for k, v in seen["entities"].items() if k not in ("unknown", "ambiguous")}
    return {"intent": intent, "entities": entities, "ids": answer.get("focus") or previous.get("ids") or {}}


async def respond(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
    """Write the answer as the AI message and emit its structured part."""
    answer = state.get("answer") or {"text": "I have no answer to that.", "kind": "error"}
    seen = state.get("understanding") or {}
    structured = {"type": "chat.answer", "intent": seen.get("intent"), "decided_by": seen.get("decided_by"),
                  **{key: answer.get(key) for key in STRUCTURED}}  # fmt: skip
    message_id = answer.get("message_id") or f"ai-{uuid.uuid4()}"  # the streamed LLM message's id, when it wrote it
    message = AIMessage(content=answer["text"], id=message_id, response_metadata={"rimas": structured})
    runtime.stream_writer(structured)
    return {"messages": [message], "focus": next_focus(state)}
