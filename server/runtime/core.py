"""The graph runtime of one server process: assistants, the run manager, and thread state access.

Opened by the app's lifespan (or ``rimas worker``) after the database pool and the checkpointer: it compiles
the graphs with that checkpointer, opens this process's bus (owner lock + LISTEN), queues again the runs of
dead processes and starts the workers. Closed before them: the workers drain (see :mod:`.manager`).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any, cast

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import InvalidUpdateError
from langgraph.store.base import BaseStore
from langgraph.types import StateSnapshot, StateUpdate

from server.auth import Principal
from server.errors import ApiError
from server.runtime import store
from server.runtime.admission import check_size
from server.runtime.assistants import Assistants, env_defaults
from server.runtime.authority import Authority, load_policy_authority
from server.runtime.bus import Bus
from server.runtime.crons import CronScheduler
from server.runtime.decisions import check_fork, missing_checkpoint
from server.runtime.interrupts import looks_like_approval
from server.runtime.item_store import close_item_store, open_item_store
from server.runtime.manager import RunManager
from server.runtime.registry import Assistant, Registry, RegistryError, load_registry
from server.runtime.schemas import HistoryRequest, Superstep
from server.runtime.schemas import StateUpdate as StateWrite
from server.runtime.serde import to_jsonable
from server.runtime.state import checkpoint_ref, pending_interrupts, since_of, state_json
from server.settings import Role, Settings

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
    assistants: Assistants
    item_store: BaseStore
    manager: RunManager
    _bus: Bus
    crons: CronScheduler

    @classmethod
    async def open(
        cls, settings: Settings, url: str, pool: store.Pool, checkpointer: BaseCheckpointSaver[Any]
    ) -> Runtime:
        required = "langgraph_config" in settings.model_fields_set
        item_store = await open_item_store(pool, settings)
        try:
            registry = load_registry(settings.langgraph_config, checkpointer, required=required, store=item_store)
            try:
                assistants = Assistants(pool, registry, env_defaults(os.environ.get("LANGGRAPH_CONFIG")))
            except (ValueError, ApiError) as exc:  # a default config the graph would refuse
                raise RegistryError(f"LANGGRAPH_CONFIG: {exc}") from exc
            authority = load_policy_authority()
            bus = await Bus.open(url)
        except BaseException:
            await close_item_store(item_store)
            raise
        manager = RunManager(settings, pool, assistants, checkpointer, authority, bus)
        try:
            recovered = await manager.recover_orphans()
        except BaseException:
            await bus.close()
            await close_item_store(item_store)
            raise
        if recovered:
            log.warning("queued again the runs of a stopped process", extra={"runs": recovered})
        crons = CronScheduler(manager)
        bus.start()
        manager.start_workers()
        crons.start()
        return cls(settings, pool, checkpointer, registry, assistants, item_store, manager, bus, crons)

    @property
    def authority(self) -> Authority | None:
        """The approval authority in force (from the policy file)."""
        return self.manager.authority

    async def close(self) -> None:
        try:
            await self.crons.close()
            await self.manager.close()
        finally:
            try:
                await self._bus.close()
            finally:
                await close_item_store(self.item_store)

    # -- thread state ---------------------------------------------------------------------------------------

    def assistant_of(self, row: store.Row) -> Assistant | None:
        """The assistant whose graph interprets the thread's checkpoints (None before its first run)."""
        assistant_id = row.get("assistant_id")
        if not assistant_id:
            return None
        assistant = self.registry.get(assistant_id)
        if assistant is None:
            raise ApiError(409, "conflict", f"thread {row['thread_id']} belongs to graph {assistant_id!r}, "
                           "which this server no longer serves")  # fmt: skip
        return assistant.for_config(row.get("config"))

    @staticmethod
    def _config(thread_id: str, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
        configurable = {"thread_id": thread_id, "checkpoint_ns": ns}
        if checkpoint_id:
            configurable["checkpoint_id"] = checkpoint_id
        return {"configurable": configurable}

    async def snapshot(
        self, row: store.Row, checkpoint_id: str | None = None, *, in_body: bool = False, ns: str = ""
    ) -> StateSnapshot | None:
        """The thread's state (latest, or at ``checkpoint_id``); None when it has no checkpoint yet. A missing
        checkpoint is a 404 when the path named it, a 409 when the body did (the thread exists; the checkpoint
        is not in its history)."""
        assistant = self.assistant_of(row)
        snapshot = None
        if assistant is not None:
            try:
                snapshot = await assistant.graph.aget_state(self._config(row["thread_id"], checkpoint_id, ns))  # type: ignore[arg-type]
            except ValueError as exc:  # LangGraph: no subgraph at that namespace
                raise ApiError(404, "not_found", f"checkpoint.checkpoint_ns: {ns!r}: {exc}") from None
        if snapshot is None or snapshot.created_at is None:
            if checkpoint_id:
                raise missing_checkpoint(row["thread_id"], checkpoint_id, in_body)
            return None
        return snapshot

    async def state(
        self, thread_id: str, checkpoint_id: str | None = None, *, in_body: bool = False, ns: str = ""
    ) -> dict[str, Any]:
        """The thread's state (latest or at a checkpoint; a subgraph's with its namespace ``ns``)."""
        row = await store.fetch_thread(self.pool, thread_id)
        snapshot = await self.snapshot(row, checkpoint_id, in_body=in_body, ns=ns)
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

    async def update_state(self, thread_id: str, body: StateWrite, principal: Principal) -> dict[str, Any]:
        """Write state as if ``as_node`` had returned ``values`` (admin), or end a pending interrupt without a
        decision (``values: null, as_node: "__end__"``; approver for approvals). The write is stamped with who
        made it, so the audit shows it; the thread's index row is re-derived from the new checkpoint."""
        check_size("values", body.values, self.settings.max_input_bytes, "RIMAS_MAX_INPUT_BYTES")
        checkpoint_id = body.resolved_checkpoint_id
        async with self.pool.connection() as conn, conn.transaction():
            row = await store.lock_thread(conn, thread_id)
            assistant = self.assistant_of(row)
            if assistant is None:
                raise ApiError(409, "no_state", f"thread {thread_id} has no state yet; start a run on it first")
            pending = (row.get("interrupts") or []) if row["status"] == "interrupted" else []
            metadata: dict[str, Any] = {"thread_id": thread_id, "assistant_id": assistant.assistant_id,
                                        "graph_id": assistant.graph_id, "actor_id": principal.id,
                                        "actor_role": principal.role}  # fmt: skip
            if body.resolves and pending:
                needed: Role = "approver" if any(looks_like_approval(p.get("value")) for p in pending) else "operator"
                if not principal.has(needed):
                    raise ApiError(403, "forbidden", f"ending this interrupt without a decision needs the {needed} "
                                   f"role; your key has {principal.role}")  # fmt: skip
                metadata |= {"resolution": "ignored", "resolved_interrupts": [p["id"] for p in pending]}
            else:
                if not principal.has("admin"):
                    raise ApiError(
                        403, "forbidden", "writing a thread's state needs the admin role (ending a pending "
                        "interrupt with values null and as_node '__end__' needs approver)",
                    )
                if pending:
                    raise ApiError(409, "interrupted", f"thread {thread_id} waits at an interrupt; answer it "
                                   "(command.resume), or end it with values null and as_node '__end__', before "
                                   "writing its state")  # fmt: skip
                if checkpoint_id is not None:
                    await self.snapshot(row, checkpoint_id, in_body=True, ns=body.checkpoint_ns)
                    if not body.checkpoint_ns:
                        await check_fork(self.checkpointer, thread_id, checkpoint_id)
            graph = assistant.graph
            root = not body.checkpoint_ns  # a subgraph's write: LangGraph checks the node against that subgraph
            if root and body.as_node is not None and body.as_node not in graph.nodes and body.as_node != "__end__":
                nodes = ", ".join(n for n in graph.nodes if not n.startswith("__"))
                raise ApiError(409, "state_mismatch", f"as_node: {body.as_node!r} is not a node of this thread's "
                               f"graph {assistant.graph_id}; nodes: {nodes}")  # fmt: skip
            config = self._config(thread_id, checkpoint_id, body.checkpoint_ns) | {"metadata": metadata}
            try:
                written = await graph.aupdate_state(cast(Any, config), body.values, as_node=body.as_node)
            except (InvalidUpdateError, ValueError) as exc:
                raise ApiError(409, "state_mismatch", f"values: do not fit this thread's graph state: {exc}") from exc
            snapshot = await graph.aget_state(cast(Any, self._config(thread_id)))
            now_pending = pending_interrupts(snapshot)
            status: store.ThreadStatus = "interrupted" if now_pending or snapshot.next else "idle"
            await store.set_thread_state(conn, thread_id, status, now_pending, since_of(now_pending))
        return {"checkpoint": checkpoint_ref(written)}

    async def write_supersteps(
        self, thread_id: str, graph: Assistant, supersteps: list[Superstep], principal: Principal
    ) -> None:
        """Write a new thread's checkpoints, one per superstep, as its graph's nodes (``POST /threads`` with
        ``supersteps``); stamped with who wrote them, and the thread's index row derived from the result."""
        check_size("supersteps", [s.model_dump() for s in supersteps], self.settings.max_input_bytes,
                   "RIMAS_MAX_INPUT_BYTES")  # fmt: skip
        nodes = set(graph.graph.nodes) | {"__input__", "__end__"}
        for i, step in enumerate(supersteps):
            for j, update in enumerate(step.updates):
                if update.as_node not in nodes:  # as for a state write: the request is fine, the graph differs
                    where = f"supersteps[{i}].updates[{j}].as_node"
                    raise ApiError(409, "state_mismatch", f"{where}: {update.as_node!r} is not a node of graph "
                                   f"{graph.graph_id}; nodes: {', '.join(sorted(nodes))}")  # fmt: skip
        metadata = {"thread_id": thread_id, "graph_id": graph.graph_id, "actor_id": principal.id,
                    "actor_role": principal.role}  # fmt: skip
        config = self._config(thread_id) | {"metadata": metadata}
        steps = [[StateUpdate(u.values, u.as_node) for u in step.updates] for step in supersteps]
        try:
            await graph.graph.abulk_update_state(cast(Any, config), steps)
        except (InvalidUpdateError, ValueError) as exc:
            raise ApiError(409, "state_mismatch", f"supersteps: do not fit graph {graph.graph_id}: {exc}") from exc
        snapshot = await graph.graph.aget_state(cast(Any, self._config(thread_id)))
        pending = pending_interrupts(snapshot)
        status: store.ThreadStatus = "interrupted" if pending or snapshot.next else "idle"
        async with self.pool.connection() as conn:
            # LangGraph stamps the config's metadata on the first superstep only; the thread is new, so every
            # checkpoint it has came from this write
            await conn.execute("UPDATE checkpoints SET metadata = metadata || %s WHERE thread_id = %s",
                               (store.Jsonb(to_jsonable(metadata)), thread_id))  # fmt: skip
            await conn.execute("UPDATE threads SET assistant_id = %s WHERE thread_id = %s", (graph.graph_id, thread_id))
            await store.set_thread_state(conn, thread_id, status, pending, since_of(pending))

    async def copy_thread(self, thread_id: str, principal: Principal) -> dict[str, Any]:
        """A new thread with this one's metadata and whole checkpoint history."""
        row = await store.copy_thread(self.pool, thread_id, str(uuid.uuid4()), principal.id)
        return row

    async def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's index row and every checkpoint of it (a busy thread is a 409)."""
        async with self.pool.connection() as conn:
            await store.delete_thread(conn, thread_id)
        await self.checkpointer.adelete_thread(thread_id)
