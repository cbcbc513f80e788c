"""Run settings of a ``planning`` run (LangGraph ``context_schema``): who started it.

The server fills ``principal`` with the caller's key name and role; nothing else is taken from the client.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict


class PlanningContext(TypedDict, total=False):
    """Who started the run: ``{"id": key name, "role": role}``."""

    principal: dict[str, Any]
