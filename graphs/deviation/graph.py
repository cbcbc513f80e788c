"""The ``deviation`` graph: score -> assess -> supervisor -> specialists (in waves) -> guardrails -> approval ->
execute -> record.

``dispatch`` sends the supervisor's specialists that may run now, in parallel (``Send``), and comes back when
they are done: a specialist that needs another's proposals (the customer message describes the shipment
decision) runs in the next wave. ``approval`` interrupts only when an action needs a person. Build with
:func:`build_graph` (the server passes its Postgres saver); ``graph`` is the checkpointer-free build that
``langgraph.json`` names for LangGraph Studio.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Send

from graphs.deviation.context import DeviationContext
from graphs.deviation.execute import execute, record
from graphs.deviation.intake import assess, score
from graphs.deviation.review import approval, guardrails
from graphs.deviation.specialists import REGISTRY, run_specialist
from graphs.deviation.state import DeviationInput, DeviationState
from graphs.deviation.supervisor import supervisor


def dispatch(state: DeviationState) -> dict[str, Any]:
    """A join point between waves of specialists (the routing happens in :func:`next_step`)."""
    return {}


def next_step(state: DeviationState) -> list[Send] | Literal["guardrails"]:
    """The next wave of specialists (each sent the whole state), or ``guardrails`` when every one has run."""
    selected = (state.get("plan") or {}).get("specialists") or []
    wave = REGISTRY.next_wave(selected, set(state.get("analyses") or {}))
    if not wave:
        return "guardrails"
    return [Send(name, dict(state)) for name in wave]


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: BaseStore | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the deviation graph (with ``checkpointer``, interrupts and resumes work)."""
    builder = StateGraph(DeviationState, context_schema=DeviationContext, input_schema=DeviationInput)
    builder.add_node("score", score)
    builder.add_node("assess", assess)
    builder.add_node("supervisor", supervisor)
    builder.add_node("dispatch", dispatch)
    for name in REGISTRY:
        builder.add_node(name, run_specialist(name))  # type: ignore[arg-type]  # (a closure: mypy infers Never)
        builder.add_edge(name, "dispatch")
    builder.add_node("guardrails", guardrails)
    builder.add_node("approval", approval)
    builder.add_node("execute", execute)
    builder.add_node("record", record)
    builder.add_edge(START, "score")
    builder.add_edge("score", "assess")
    builder.add_edge("assess", "supervisor")
    builder.add_edge("supervisor", "dispatch")
    builder.add_conditional_edges("dispatch", next_step, [*REGISTRY, "guardrails"])
    builder.add_edge("guardrails", "approval")
    builder.add_edge("approval", "execute")
    builder.add_edge("execute", "record")
    builder.add_edge("record", END)
    return builder.compile(checkpointer=checkpointer, store=store, name="deviation")


graph = build_graph()
