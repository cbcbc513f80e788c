"""LLM mode of ``understand``: the model routes the question by calling one tool, a specialist or ``answer_directly``.

Each specialist is a tool whose one argument is the intent (an enum of the intents it answers); ``answer_directly``
takes ``greeting`` or ``out_of_scope``. The model sees the specialists' descriptions and the last turns of the
conversation, redacted. Anything else than exactly one valid call (no call, several, an unknown tool or intent, an
error) returns None and the classifier's reading stands. Writes never reach the model: the write guard runs first.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any, Final, Literal

from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field, create_model

from graphs.chat.specialists import SPECIALISTS
from tools.redact import redact_text

log = logging.getLogger(__name__)

DIRECT: Final = "answer_directly"
HISTORY: Final = 6
"""Earlier messages shown to the model."""

SYSTEM: Final = (
    "You route questions of a retail operations chat to the specialist that answers them. Call exactly one tool: "
    "the specialist, with the intent that fits, or answer_directly for a greeting or a question none of them "
    "covers. Follow-ups ('and at store 2?', 'why?') continue the previous question's topic."
)


class _Direct(BaseModel):
    kind: Literal["greeting", "out_of_scope"] = Field(description="greeting, or out_of_scope for anything else.")


def _unused(**_: Any) -> str:  # the routing reads the call's arguments; the tool never runs
    raise NotImplementedError


@functools.cache
def route_tools() -> list[StructuredTool]:
    """One tool per specialist (its argument: the intent) and ``answer_directly``; built once per process."""
    found = []
    for spec in SPECIALISTS:
        intent_type: Any = Literal[spec.intents]
        schema = create_model(f"{spec.name}_args", intent=(intent_type, Field(description="What is asked.")))
        found.append(StructuredTool.from_function(_unused, name=spec.name, description=spec.description,
                                                  args_schema=schema))  # fmt: skip
    found.append(StructuredTool.from_function(_unused, name=DIRECT, description="a greeting, or a question no "
                                              "specialist answers", args_schema=_Direct))  # fmt: skip
    return found


def _text(message: AnyMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else " ".join(str(b.get("text", "")) for b in content
                                                             if isinstance(b, dict))  # fmt: skip


def choice(calls: Sequence[dict[str, Any]]) -> str | None:
    """The intent named by exactly one valid tool call, else None."""
    if len(calls) != 1:
        return None
    name, args = calls[0].get("name"), calls[0].get("args") or {}
    if name == DIRECT:
        kind = args.get("kind")
        return {"greeting": "chat.greeting", "out_of_scope": "chat.out_of_scope"}.get(str(kind))
    spec = next((s for s in SPECIALISTS if s.name == name), None)
    intent = args.get("intent")
    return intent if spec is not None and intent in spec.intents else None


async def llm_intent(model: Any, history: Sequence[AnyMessage], question: str) -> str | None:
    """The intent the model routes ``question`` to, or None (the caller keeps the classifier's)."""
    earlier = [HumanMessage(f"{m.type}: {redact_text(_text(m))[:500]}") for m in history[-HISTORY - 1 : -1]]
    try:
        reply = await model.bind_tools(route_tools()).ainvoke(
            [SystemMessage(SYSTEM), *earlier, HumanMessage(redact_text(question))]
        )
    except Exception as exc:  # the model or its server failed: the classifier decides
        log.warning("chat supervisor model failed", extra={"error": str(exc)})
        return None
    return choice([dict(c) for c in getattr(reply, "tool_calls", None) or []])
