"""Run settings of a ``deviation`` run (LangGraph ``context_schema``): who started it.

The server fills ``principal`` with the caller's key name and role (``system:auto-start`` for the threads the
scoring pipeline starts); the workflow records it as the one who started the resolution. Nothing else is taken
from the client: the policy, the models and the tools come from the server process.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict


class DeviationContext(TypedDict, total=False):
    """Who started the run: ``{"id": key name, "role": role}``."""

    principal: dict[str, Any]
