"""The graph runtime of one server process: assistants, the run manager, and thread state access.

Opened by the app's lifespan after the database pool and the checkpointer (it compiles the graphs with that
checkpointer, takes this process's owner lock, and recovers runs orphaned by a dead process); closed before
them (executing runs are cancelled and recorded as errors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import StateSnapshot

from server.errors import ApiError
from server.runtime import store
from server.runtime.authority import Authority, load_policy_authority
from server.runtime.manager import RunManager, hold_owner_lock
from server.runtime.registry import Assistant, Registry, load_registry
from server.runtime.schemas import HistoryRequest
from server.runtime.state import state_json
from server.settings import Settings

log = logging.getLogger(__name__)

EMPTY_STATE: dict[str, Any] = {
    "values": {}, "next": [], "checkpoint": None, "metadata": {}, "created_at": None,
    "parent_checkpoint": None, "tasks": [], "interrupts": [], "summary": None,
}  # fmt: skip


@dataclass
class Runtime:
    """Everything the graph endpoints need."""

    settings: Settings
    pool: store.Pool
    checkpointer: BaseCheckpointSaver[Any]
    registry: Registry
    manager: RunManager
    _owner_conn: psycopg.AsyncConnection[Any]

    @classmethod
    async def open(
        cls, settings: Settings, url: str, pool: store.Pool, checkpointer: BaseCheckpointSaver[Any]
    ) -> Runtime:
        required = "langgraph_config" in settings.model_fields_set
        registry = load_registry(settings.langgraph_config, checkpointer, required=required)
        authority = load_policy_authority()
        owner_conn, owner_key = await hold_owner_lock(url)
        manager = RunManager(settings, pool, registry, checkpointer, authority, owner_key)
        try:
            recovered = await manager.recover_orphans()
        except BaseException:
            await owner_conn.close()
            raise
        if recovered:
            log.warning("recovered runs left by a stopped process", extra={"runs": recovered})
        manager.start_sweeper()
        return cls(settings, pool, checkpointer, registry, manager, owner_conn)

    @property
    def authority(self) -> Authority | None:
        """The approval authority in force (from the policy file)."""
        return self.manager.authority

    async def close(self) -> None:
        try:
            await self.manager.close()
        finally:
            await self._owner_conn.close()

    # -- thread state ---------------------------------------------------------------------------------------

    def assistant_of(self, row: store.Row) -> Assistant | None:
        """The assistant whose graph interprets the thread's checkpoints (None before its first run)."""
        assistant_id = row.get("assistant_id")
        if not assistant_id:
            return None
        assistant = self.registry.get(assistant_id)
        if assistant is None:
            raise ApiError(409, "conflict", f"thread {row['thread_id']} belongs to assistant {assistant_id!r}, "
                           "which this server no longer serves")  # fmt: skip
        return assistant

    @staticmethod
    def _config(thread_id: str, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
        configurable = {"thread_id": thread_id, "checkpoint_ns": ns}
        if checkpoint_id:
            configurable["checkpoint_id"] = checkpoint_id
        return {"configurable": configurable}

    async def snapshot(self, row: store.Row, checkpoint_id: str | None = None) -> StateSnapshot | None:
        """The thread's state (latest, or at ``checkpoint_id``); None when it has no checkpoint yet."""
        assistant = self.assistant_of(row)
        if assistant is None:
            if checkpoint_id:
                raise ApiError(404, "not_found", f"checkpoint {checkpoint_id} not found in thread {row['thread_id']}")
            return None
        snapshot = await assistant.graph.aget_state(self._config(row["thread_id"], checkpoint_id))  # type: ignore[arg-type]
        if snapshot.created_at is None:
            if checkpoint_id:
                raise ApiError(404, "not_found", f"checkpoint {checkpoint_id} not found in thread {row['thread_id']}")
            return None
        return snapshot

    async def state(self, thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
        row = await store.fetch_thread(self.pool, thread_id)
        snapshot = await self.snapshot(row, checkpoint_id)
        return state_json(snapshot) if snapshot is not None else dict(EMPTY_STATE)

    async def values(self, row: store.Row) -> dict[str, Any] | None:
        snapshot = await self.snapshot(row)
        if snapshot is None:
            return None
        values = state_json(snapshot)["values"]
        return values if isinstance(values, dict) else {"value": values}

    async def history(self, thread_id: str, request: HistoryRequest) -> list[dict[str, Any]]:
        """Checkpoints newest first (``limit``, ``before`` a checkpoint id, ``metadata`` filter)."""
        row = await store.fetch_thread(self.pool, thread_id)
        assistant = self.assistant_of(row)
        if assistant is None:
            return []
        ns = request.checkpoint.checkpoint_ns if request.checkpoint is not None else ""
        before = self._config(thread_id, request.before_id, ns) if request.before_id else None
        states = []
        async for snapshot in assistant.graph.aget_state_history(
            self._config(thread_id, ns=ns),  # type: ignore[arg-type]
            filter=request.metadata or None,
            before=before,  # type: ignore[arg-type]
            limit=request.limit,
        ):
            states.append(state_json(snapshot))
        return states

    async def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's index row and every checkpoint of it (a busy thread is a 409)."""
        async with self.pool.connection() as conn:
            await store.delete_thread(conn, thread_id)
        await self.checkpointer.adelete_thread(thread_id)
