"""What the tools run on: the database pool, the policy, the knowledge base and the models of this process.

The server installs them once at start-up (:func:`install`); graph nodes and REST routes then call the same
tool functions with :func:`current`. Graph modules stay importable without a server (LangGraph Studio,
``langgraph dev``, tests): nothing here opens a connection at import time, and a tool called before anything
was installed gets a :class:`ToolsNotReady` error that says what to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from rag.policy import Policy, get_policy
from rag.service import KnowledgeBase


class ToolsNotReady(RuntimeError):
    """A tool was called in a process where the server has not installed its resources."""


@dataclass
class ToolDeps:
    """The shared resources every tool reads. ``models`` maps a model name (``delay``, ``anomaly``) to its
    loaded model object; a name is absent when that model is missing (the tool then says so)."""

    pool: AsyncConnectionPool[Any]
    policy: Policy = field(default_factory=get_policy)
    knowledge: KnowledgeBase | None = None
    # Qdrant local mode is not thread-safe: knowledge-base calls (run in threads) hold this lock
    knowledge_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    models: dict[str, Any] = field(default_factory=dict)
    # the chat model of the LLM policies (a LangChain chat model); None = deterministic policies only
    llm: Any | None = None
    # starts a planning thread: (plan request, principal {"id", "role"}, idempotency key or None) -> plan id; the
    # same key gives the same plan, started once; installed by the server, which owns the run queue (None: this
    # process cannot start plans, e.g. a graph run in LangGraph Studio)
    plan_starter: Callable[[dict[str, Any], dict[str, Any], str | None], Awaitable[str]] | None = None


_installed: ToolDeps | None = None


def install(deps: ToolDeps | None) -> None:
    """Make ``deps`` the process's tool resources (None removes them, at shutdown)."""
    global _installed
    _installed = deps


def current() -> ToolDeps:
    """The installed resources; raises :class:`ToolsNotReady` when the server has not started them."""
    if _installed is None:
        raise ToolsNotReady(
            "the tools have no database: run them inside `rimas serve` / `rimas worker` (or call "
            "tools.deps.install(ToolDeps(pool=...)) first, as the tests do)"
        )
    return _installed
