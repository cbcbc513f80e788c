"""State of the ``chat`` graph: the conversation (``messages``, as Agent Chat UI expects) and what it is about.

Each turn ``understand`` reads the last human message into ``understanding`` (replaced every turn), a specialist
or ``understand`` itself puts its reply in ``answer``, and ``respond`` turns that into the AI message and moves the
``focus`` on: the intent and entities in play, so a follow-up ("and at store 2?", "what about last week?", "why?")
is read against them.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import MessagesState


class ChatState(MessagesState):
    """The chat's state. ``messages`` accumulate (``add_messages``); the other keys hold this turn's values."""

    understanding: dict[str, Any]
    """This turn: ``{"text", "intent", "confidence", "decided_by" (classifier | follow-up | guard | llm),
    "route" (a specialist or respond), "entities" (``Entities.to_dict()``), "as_of"}``."""
    answer: dict[str, Any]
    """This turn's reply before it is written as a message (``Answer.to_dict()``)."""
    focus: dict[str, Any]
    """What the conversation is about after the last answer: ``{"intent", "entities", "ids"}`` (``ids`` are the
    last answer's order / customer / plan / store ids and skus)."""


class ChatInput(MessagesState):
    """What a run takes: the new message(s)."""
