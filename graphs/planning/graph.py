"""The ``planning`` graph: intake -> supervisor -> demand_analyst -> (inventory_planner | marketing_planner, in
parallel) -> consolidate -> reflection -> approval -> finalize | rejected.

``dispatch`` sends the specialists that may run now (``Send``) and comes back when they are done: the two planners
need the analyst's forecast, so they form the second wave. ``approval`` interrupts for a person's decision. Build
with :func:`build_graph` (the server passes its Postgres saver); ``graph`` is the checkpointer-free build that
``langgraph.json`` names for LangGraph Studio.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Send

from graphs.planning.consolidate import consolidate, reflection
from graphs.planning.context import PlanningContext
from graphs.planning.intake import intake
from graphs.planning.review import after_approval, approval, finalize, rejected
from graphs.planning.specialists import REGISTRY, run_specialist
from graphs.planning.state import PlanningInput, PlanningState
from graphs.planning.supervisor import supervisor


def dispatch(state: PlanningState) -> dict[str, Any]:
    """A join point between waves of specialists (the routing happens in :func:`next_step`)."""
    return {}


def next_step(state: PlanningState) -> list[Send] | Literal["consolidate"]:
    """The next wave of specialists (each sent the whole state), or ``consolidate`` when every one has run."""
    selected = (state.get("routing") or {}).get("specialists") or []
    wave = REGISTRY.next_wave(selected, set(state.get("analyses") or {}))
    if not wave:
        return "consolidate"
    return [Send(name, dict(state)) for name in wave]


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, store: BaseStore | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the planning graph (with ``checkpointer``, the approval interrupt and its resume work)."""
    builder = StateGraph(PlanningState, context_schema=PlanningContext, input_schema=PlanningInput)
    builder.add_node("intake", intake)
    builder.add_node("supervisor", supervisor)
    builder.add_node("dispatch", dispatch)
    for name in REGISTRY:
        builder.add_node(name, run_specialist(name))  # type: ignore[arg-type]  # (a closure: mypy infers Never)
        builder.add_edge(name, "dispatch")
    builder.add_node("consolidate", consolidate)
    builder.add_node("reflection", reflection)
    builder.add_node("approval", approval)
    builder.add_node("finalize", finalize)
    builder.add_node("rejected", rejected)
    builder.add_edge(START, "intake")
    builder.add_edge("intake", "supervisor")
    builder.add_edge("supervisor", "dispatch")
    builder.add_conditional_edges("dispatch", next_step, [*REGISTRY, "consolidate"])
    builder.add_edge("consolidate", "reflection")
    builder.add_edge("reflection", "approval")
    builder.add_conditional_edges("approval", after_approval, ["finalize", "rejected"])
    builder.add_edge("finalize", END)
    builder.add_edge("rejected", END)
    return builder.compile(checkpointer=checkpointer, store=store, name="planning")


graph = build_graph()
