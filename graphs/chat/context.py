"""Run settings of a ``chat`` run (LangGraph ``context_schema``): who is asking.

The server fills ``principal`` with the caller's key name and role; nothing else is taken from the client. The
planning specialist starts a plan in the asker's name; everything else the chat does is read-only.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict


class ChatContext(TypedDict, total=False):
    """Who is asking: ``{"id": key name, "role": role}``."""

    principal: dict[str, Any]
