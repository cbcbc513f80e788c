"""Thread state as the API shows it: LangGraph ``ThreadState`` and ``Thread`` objects built from snapshots.

Every state also carries a ``summary`` (step, what ran from this checkpoint, the keys each node wrote,
interrupts, the run and the actor that produced it) so a history reads without decoding the values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from langgraph.types import PregelTask, StateSnapshot

from server.runtime.serde import to_jsonable


def checkpoint_ref(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``Checkpoint`` object of a checkpoint config."""
    if not config:
        return None
    conf = config.get("configurable", {})
    return {
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
        "checkpoint_map": conf.get("checkpoint_map"),
    }


def task_checkpoint(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """A task's subgraph checkpoint: its thread and namespace (its id and map only when known)."""
    ref = checkpoint_ref(config)
    return {k: v for k, v in ref.items() if v is not None or k == "checkpoint_ns"} if ref else None


def _task_json(task: PregelTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "name": task.name,
        "path": to_jsonable(list(task.path)),
        "error": f"{type(task.error).__name__}: {task.error}" if task.error is not None else None,
        "interrupts": to_jsonable(list(task.interrupts)),
        "checkpoint": task_checkpoint(task.state) if isinstance(task.state, Mapping) else None,
        "state": None,
        "result": to_jsonable(task.result) if task.result is not None else None,
    }


def _written(result: Any) -> list[str] | str:
    if isinstance(result, Mapping):
        return sorted(str(k) for k in result)
    if isinstance(result, list | tuple):
        return sorted({str(item[0]) for item in result if isinstance(item, list | tuple) and item})
    return type(result).__name__


def summarize(snapshot: StateSnapshot) -> dict[str, Any]:
    """Step, the nodes that ran (or will run) from this checkpoint, their writes, interrupts, run and actor."""
    metadata: dict[str, Any] = dict(snapshot.metadata or {})
    actor = {"id": metadata["actor_id"], "role": metadata.get("actor_role")} if "actor_id" in metadata else None
    return {
        "step": metadata.get("step"),
        "source": metadata.get("source"),
        "run_id": metadata.get("run_id"),
        "actor": actor,
        "nodes": [task.name for task in snapshot.tasks],
        "writes": {task.name: _written(task.result) for task in snapshot.tasks if task.result is not None},
        "errors": {task.name: f"{type(task.error).__name__}: {task.error}" for task in snapshot.tasks if task.error},
        "interrupts": len(snapshot.interrupts),
        "created_at": snapshot.created_at,
    }


def state_json(snapshot: StateSnapshot) -> dict[str, Any]:
    """A LangGraph ``ThreadState`` (plus ``summary``)."""
    values = to_jsonable(snapshot.values)
    return {
        "values": values if isinstance(values, dict | list) else {"value": values},
        "next": list(snapshot.next),
        "checkpoint": checkpoint_ref(snapshot.config),
        "metadata": to_jsonable(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "parent_checkpoint": checkpoint_ref(snapshot.parent_config),
        "tasks": [_task_json(task) for task in snapshot.tasks],
        "interrupts": to_jsonable(list(snapshot.interrupts)),
        "summary": summarize(snapshot),
    }


def pending_interrupts(snapshot: StateSnapshot) -> list[dict[str, Any]]:
    """The interrupts a thread waits on, each with its task, node and since when (the checkpoint's time)."""
    node_of = {i.id: (task.id, task.name) for task in snapshot.tasks for i in task.interrupts}
    pending = []
    for item in snapshot.interrupts:
        task_id, node = node_of.get(item.id, (None, None))
        pending.append(
            {"id": item.id, "value": to_jsonable(item.value), "task_id": task_id, "node": node,
             "since": snapshot.created_at}
        )  # fmt: skip
    return pending


def since_of(pending: list[dict[str, Any]]) -> dt.datetime | None:
    stamps = [p["since"] for p in pending if p.get("since")]
    return dt.datetime.fromisoformat(min(stamps)) if stamps else None


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def thread_json(row: Mapping[str, Any], values: Any = None) -> dict[str, Any]:
    """A LangGraph ``Thread`` from the index row (``values`` from the checkpoint when known)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in row.get("interrupts") or []:
        grouped.setdefault(item.get("task_id") or "", []).append({"value": item.get("value"), "id": item.get("id")})
    return {
        "thread_id": row["thread_id"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "state_updated_at": _iso(row["updated_at"]),
        "metadata": row.get("metadata") or {},
        "status": row["status"],
        "values": values,
        "interrupts": grouped,
        "config": row.get("config") or {},
        "context": {},
        "assistant_id": row.get("assistant_id"),
    }


def run_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A LangGraph ``Run`` from its row."""
    return {
        "run_id": str(row["run_id"]),
        "thread_id": row["thread_id"],
        "assistant_id": row["assistant_id"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "status": row["status"],
        "metadata": row.get("metadata") or {},
        "kwargs": row.get("kwargs") or {},
        "multitask_strategy": row["multitask_strategy"],
        "error": row.get("error"),
        "attempt": row.get("attempt", 0),
        "started_at": _iso(row.get("started_at")),
        "ended_at": _iso(row.get("ended_at")),
    }
