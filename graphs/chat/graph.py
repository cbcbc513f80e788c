"""The ``chat`` graph: understand -> (a specialist) -> respond.

``understand`` reads the question and routes it to the specialist that answers its intent, or straight to
``respond`` with a ready answer (a greeting, a clarifying question, a refusal). A specialist calls its read tools
and hands back an :class:`~graphs.chat.specialists.base.Answer` (with an LLM configured, through its tool-using
agent, :mod:`graphs.chat.agent`); ``respond`` writes it as the AI message. The
state is ``MessagesState``-based, so Agent Chat UI renders the conversation. Build with :func:`build_graph` (the
server passes its Postgres saver); ``graph`` is the checkpointer-free build ``langgraph.json`` names.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal, get_args

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore

from graphs.chat.agent import agent_answer
from graphs.chat.context import ChatContext
from graphs.chat.respond import respond
from graphs.chat.specialists import REGISTRY, SPECIALISTS, ChatSpecialist
from graphs.chat.specialists.base import Ask, failed
from graphs.chat.state import ChatInput, ChatState
from graphs.chat.understand import understand
from graphs.common.specialists import SpecialistError
from ml.nlu import Entities
from tools.catalog import load_catalog
from tools.deps import current

log = logging.getLogger(__name__)

TEMPLATE_ONLY: Final = frozenset({"planning.start"})
"""Intents answered by the template path even with an LLM (starting a plan is a write, with its role check)."""

Node = Callable[[ChatState, Runtime[ChatContext]], Awaitable[dict[str, Any]]]


def question_key(state: ChatState) -> str | None:
    """This question's identity, ``thread:message``: the key of what answering it starts (a plan), so that a run
    executed again after a crash starts nothing twice. None outside a thread."""
    try:
        thread_id = (get_config().get("configurable") or {}).get("thread_id")
    except RuntimeError:  # called outside a graph run
        return None
    asked = [m for m in state.get("messages") or [] if getattr(m, "type", None) == "human"]
    if not thread_id or not asked or not asked[-1].id:
        return None
    return f"{thread_id}:{asked[-1].id}"


def ask_of(state: ChatState, principal: dict[str, Any] | None, key: str | None = None) -> Ask:
    """The :class:`Ask` a specialist answers, from this turn's understanding and the focus (``previous`` also
    carries the caller's principal, ``_principal``, and the question's key, ``_asked``)."""
    seen = state["understanding"]
    previous = dict((state.get("focus") or {}).get("ids") or {})
    previous["_principal"] = principal or {"id": "anonymous", "role": "viewer"}
    previous["_asked"] = key
    return Ask(text=seen["text"], intent=seen["intent"], entities=Entities.from_dict(seen["entities"] or {}),
               as_of=dt.date.fromisoformat(seen["as_of"]), previous=previous)  # fmt: skip


def specialist_node(spec: ChatSpecialist) -> Node:
    """The node of one specialist: its answer, or what failed when it raised."""

    async def node(state: ChatState, runtime: Runtime[ChatContext]) -> dict[str, Any]:
        ask = ask_of(state, (runtime.context or {}).get("principal"), question_key(state))
        model = current().llm
        try:
            if model is not None and ask.intent not in TEMPLATE_ONLY:
                answer = await agent_answer(spec, ask, model, await load_catalog())
            else:
                answer = await spec.answer(ask)
        except Exception as exc:  # a specialist bug must not end the conversation: say what failed
            log.exception("chat specialist failed", extra={"specialist": spec.name})
            answer = failed(spec.name, exc)
        return {"answer": answer.to_dict()}

    node.__name__ = spec.name
    return node


Route = Literal["inventory", "pricing", "customer", "fulfillment", "sales", "planning", "knowledge", "respond"]
"""Where ``understand`` can send a question (checked against the registry when the graph is built)."""


def route(state: ChatState) -> Route:
    """The node named by ``understand`` (a specialist, or ``respond``)."""
    target = (state.get("understanding") or {}).get("route") or "respond"
    return target if target in get_args(Route) else "respond"  # type: ignore[return-value]


def _check_routes() -> None:
    routes, nodes = set(get_args(Route)), {*REGISTRY, "respond"}
    if routes != nodes:
        raise SpecialistError(f"graphs.chat.graph.Route lists {sorted(routes)} but the nodes are {sorted(nodes)}: "
                              "add each registered specialist to Route, remove the ones that are gone")  # fmt: skip


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: BaseStore | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the chat graph (with ``checkpointer``, the thread remembers the conversation)."""
    _check_routes()
    builder = StateGraph(ChatState, context_schema=ChatContext, input_schema=ChatInput)
    builder.add_node("understand", understand)
    for spec in SPECIALISTS:
        builder.add_node(spec.name, specialist_node(spec))  # type: ignore[arg-type]
        builder.add_edge(spec.name, "respond")
    builder.add_node("respond", respond)
    builder.add_edge(START, "understand")
    builder.add_conditional_edges("understand", route, [*REGISTRY, "respond"])
    builder.add_edge("respond", END)
    return builder.compile(checkpointer=checkpointer, store=store, name="chat")


graph = build_graph()
