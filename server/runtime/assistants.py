"""Assistants: the graphs of ``langgraph.json`` (system assistants) and those created through the API.

A system assistant's id is its graph's name; it carries the default config and context the deployment sets
for that graph (``LANGGRAPH_CONFIG``, as LangGraph Server reads it) and ``metadata.created_by = "system"``.
It cannot be changed or deleted: the file defines it. An assistant created with ``POST /assistants`` is a
row of PostgreSQL (migration 0013) naming one of those graphs with its own config, context, metadata, name
and description; every change writes a new version, and any version can be put back in force.

A run names an assistant (or a graph, meaning its system assistant); :meth:`Assistants.resolve` gives the
graph and the assistant's config and context, which the run's own are merged over.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from server.errors import ApiError
from server.runtime import store
from server.runtime.admission import check_config, check_context
from server.runtime.registry import Assistant, Registry
from server.runtime.schemas import RunConfig

log = logging.getLogger(__name__)

SORTABLE = ("assistant_id", "graph_id", "name", "created_at", "updated_at")


def not_found(assistant_id: str) -> ApiError:
    return ApiError(404, "not_found", f"Assistant {assistant_id} not found")


def no_assistant(assistant_id: str) -> ApiError:
    """What a run naming an unknown assistant gets (LangGraph Server's wording)."""
    return ApiError(404, "not_found", f'No assistant found for "{assistant_id}". Make sure the assistant ID is for '
                    "a valid assistant or a valid graph ID.")  # fmt: skip


def env_defaults(raw: str | None) -> dict[str, dict[str, Any]]:
    """``LANGGRAPH_CONFIG``: ``{graph_id: {"configurable": ..., "context": ..., ...}}``, the default config (and
    context) of each graph's system assistant. Malformed JSON stops start-up with the variable named."""
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"LANGGRAPH_CONFIG: not JSON ({exc})") from None
    if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
        raise ValueError("LANGGRAPH_CONFIG: must be an object of graph id -> config object")
    return parsed


@dataclass(frozen=True)
class Resolved:
    """What a run executes: the graph, and the assistant's id, version, config and context."""

    assistant_id: str
    graph: Assistant
    version: int
    config: dict[str, Any]
    context: dict[str, Any]
    stored: bool = False
    """Created through the API (its graph is state, not named by the request): a misfit is a 409."""

    def merge_config(self, run_config: Mapping[str, Any]) -> dict[str, Any]:
        """The run's config over the assistant's (``configurable`` merged key by key)."""
        merged = {**self.config, **run_config}
        configurable = {**(self.config.get("configurable") or {}), **(run_config.get("configurable") or {})}
        if configurable:
            merged["configurable"] = configurable
        return merged

    def merge_context(self, run_context: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**self.context, **(run_context or {})}


def _json(row: store.Row) -> dict[str, Any]:
    return {
        "assistant_id": str(row["assistant_id"]),
        "graph_id": row["graph_id"],
        "name": row["name"],
        "description": row.get("description"),
        "config": row["config"],
        "context": row["context"],
        "metadata": row["metadata"],
        "version": row["version"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": (row.get("updated_at") or row["created_at"]).isoformat(),
    }


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


class Assistants:
    """System assistants from the registry, others from PostgreSQL."""

    def __init__(self, pool: store.Pool, registry: Registry, defaults: Mapping[str, Mapping[str, Any]]) -> None:
        self.pool = pool
        self.registry = registry
        self._system: dict[str, dict[str, Any]] = {}
        loaded = min((graph.created_at for graph in registry.values()), default=None)
        for graph_id, graph in registry.items():
            default = dict(defaults.get(graph_id) or {})
            context = default.pop("context", None) or {}
            config = check_config(RunConfig.model_validate(default), graph.graph, None, "LANGGRAPH_CONFIG")
            check_context(graph.graph.context_schema, context, f"LANGGRAPH_CONFIG.{graph_id}.context")
            stamp = {"created_at": loaded.isoformat(), "updated_at": loaded.isoformat()} if loaded else {}
            self._system[graph_id] = {**graph.info(), "config": config, "context": context, **stamp}

    # -- reading ----------------------------------------------------------------------------------------------

    def graph(self, graph_id: str) -> Assistant:
        found = self.registry.get(graph_id)
        if found is None:
            raise ApiError(409, "conflict", f"graph {graph_id!r} is not served any more (not in langgraph.json); "
                           f"served: {', '.join(self.registry) or 'none'}")  # fmt: skip
        return found

    async def _row(self, assistant_id: str) -> store.Row | None:
        if not _is_uuid(assistant_id):
            return None
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT * FROM assistants WHERE assistant_id = %s", (assistant_id,))
            row = await cur.fetchone()
        return dict(row) if row is not None else None

    async def get(self, assistant_id: str) -> dict[str, Any]:
        if assistant_id in self._system:
            return dict(self._system[assistant_id])
        row = await self._row(assistant_id)
        if row is None:
            raise not_found(assistant_id)
        return _json(row)

    async def graph_of(self, assistant_id: str) -> Assistant:
        """The graph an assistant runs (404 for an unknown assistant)."""
        return self.graph((await self.get(assistant_id))["graph_id"])

    async def resolve(self, assistant_id: str) -> Resolved:
        """The assistant a run names (404 in LangGraph's words when there is none)."""
        try:
            found = await self.get(assistant_id)
        except ApiError as exc:
            if exc.status == 404:
                raise no_assistant(assistant_id) from None
            raise
        stored = found["assistant_id"] not in self._system
        return Resolved(found["assistant_id"], self.graph(found["graph_id"]), found["version"],
                        found["config"], found["context"], stored)  # fmt: skip

    def _system_matching(self, graph_id: str | None, name: str | None, metadata: Mapping[str, Any] | None) -> list[
        dict[str, Any]
    ]:
        found = []
        for info in self._system.values():
            if graph_id and info["graph_id"] != graph_id:
                continue
            if name and name.lower() not in info["name"].lower():
                continue
            if metadata and any(info["metadata"].get(k) != v for k, v in metadata.items()):
                continue
            found.append(dict(info))
        return found

    @staticmethod
    def _where(
        graph_id: str | None, name: str | None, metadata: Mapping[str, Any] | None
    ) -> tuple[sql.Composable, list[Any]]:
        return store.where((sql.SQL("graph_id = %s"), graph_id or None),
                           (sql.SQL("strpos(lower(name), lower(%s)) > 0"), name or None),
                           store.metadata_contains(metadata))  # fmt: skip

    async def search(
        self, *, graph_id: str | None = None, name: str | None = None, metadata: Mapping[str, Any] | None = None,
        limit: int = 10, offset: int = 0, sort_by: str | None = None, sort_order: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
        """One page of the matching assistants (newest first by default) and how many match in all."""
        key = sort_by if sort_by in SORTABLE else "created_at"
        descending = (sort_order or ("desc" if key in ("created_at", "updated_at") else "asc")) == "desc"
        where, params = self._where(graph_id, name, metadata)
        order = sql.SQL("DESC") if descending else sql.SQL("ASC")
        query = sql.SQL("SELECT * FROM assistants{} ORDER BY {} {}, assistant_id LIMIT %s").format(
            where, sql.Identifier(key), order
        )
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, [*params, offset + limit])
            rows = [_json(dict(r)) for r in await cur.fetchall()]
            cur = await conn.execute(sql.SQL("SELECT count(*) AS n FROM assistants{}").format(where), params)
            counted = await cur.fetchone()
        system = self._system_matching(graph_id, name, metadata)
        merged = sorted(system + rows, key=lambda a: a[key], reverse=descending)
        total = len(system) + (int(counted["n"]) if counted else 0)
        return merged[offset : offset + limit], total

    async def versions(
        self, assistant_id: str, *, metadata: Mapping[str, Any] | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        """The assistant's versions, newest first."""
        if assistant_id in self._system:
            info = self._system[assistant_id]
            matches = not metadata or all(info["metadata"].get(k) == v for k, v in metadata.items())
            return [dict(info)][offset : offset + limit] if matches else []
        if await self._row(assistant_id) is None:
            raise not_found(assistant_id)
        where, params = store.where((sql.SQL("assistant_id = %s"), assistant_id), store.metadata_contains(metadata))
        query = sql.SQL("SELECT * FROM assistant_versions{} ORDER BY version DESC LIMIT %s OFFSET %s").format(where)
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, [*params, limit, offset])
            return [_json(dict(r)) for r in await cur.fetchall()]

    # -- changing ---------------------------------------------------------------------------------------------

    def _checked(self, graph_id: str, config: RunConfig | None, context: dict[str, Any] | None,
                 mismatch: int = 422) -> tuple[Assistant, dict[str, Any], dict[str, Any]]:  # fmt: skip
        if graph_id not in self.registry:
            raise ApiError(422, "validation_error", f"graph_id: {graph_id!r} is not a graph of this server; "
                           f"graphs: {', '.join(self.registry) or 'none'}")  # fmt: skip
        graph = self.registry[graph_id]
        checked = check_config(config, graph.graph, None, mismatch=mismatch) if config is not None else {}
        check_context(graph.graph.context_schema, context, mismatch=mismatch)
        return graph, checked, dict(context or {})

    def _system_refusal(self, assistant_id: str, what: str) -> ApiError:
        return ApiError(409, "system_assistant", f"assistant {assistant_id} is the system assistant of graph "
                        f"{assistant_id} (defined by langgraph.json) and cannot be {what}; create an assistant of that "
                        "graph (POST /assistants) to give it another config")  # fmt: skip

    async def create(
        self, *, graph_id: str, actor: str, assistant_id: str | None = None, config: RunConfig | None = None,
        context: dict[str, Any] | None = None, metadata: Mapping[str, Any] | None = None, name: str | None = None,
        description: str | None = None, if_exists: str = "raise",
    ) -> dict[str, Any]:  # fmt: skip
        """A new assistant (version 1). An existing id is a 409 unless ``if_exists='do_nothing'``."""
        graph, checked, context = self._checked(graph_id, config, context)
        assistant_id = assistant_id or str(uuid.uuid4())
        values = (assistant_id, graph.graph_id, name or graph.graph_id, description, Jsonb(checked), Jsonb(context),
                  Jsonb(dict(metadata or {})), actor)  # fmt: skip
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO assistants (assistant_id, graph_id, name, description, config, context, metadata, "
                "created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (assistant_id) DO NOTHING RETURNING *",
                values,
            )
            row = await cur.fetchone()
            if row is None:
                if if_exists != "do_nothing":
                    raise ApiError(409, "conflict", f"assistant {assistant_id} already exists; pass "
                                   "if_exists='do_nothing' to get it")  # fmt: skip
                return await self.get(assistant_id)
            await conn.execute(
                "INSERT INTO assistant_versions (assistant_id, version, graph_id, name, description, config, context, "
                "metadata, created_by, created_at) VALUES (%s, 1, %s, %s, %s, %s, %s, %s, %s, %s)",
                (*values, row["created_at"]),
            )
        log.info("assistant created", extra={"assistant_id": assistant_id, "graph_id": graph_id, "actor": actor})
        return _json(dict(row))

    async def update(
        self, assistant_id: str, *, actor: str, graph_id: str | None = None, config: RunConfig | None = None,
        context: dict[str, Any] | None = None, metadata: Mapping[str, Any] | None = None, name: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A new version: the fields given replace the current ones (``metadata`` is merged in)."""
        if assistant_id in self._system:
            raise self._system_refusal(assistant_id, "changed")
        if not _is_uuid(assistant_id):
            raise not_found(assistant_id)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT * FROM assistants WHERE assistant_id = %s FOR UPDATE", (assistant_id,))
            current = await cur.fetchone()
            if current is None:
                raise not_found(assistant_id)
            target = graph_id or current["graph_id"]
            graph, checked, new_context = self._checked(
                target, config if config is not None else RunConfig.model_validate(current["config"]),
                context if context is not None else current["context"], mismatch=409,  # the graph or fields are stored
            )  # fmt: skip
            cur = await conn.execute(
                "SELECT coalesce(max(version), 0) + 1 AS v FROM assistant_versions WHERE assistant_id = %s",
                (assistant_id,),
            )
            version_row = await cur.fetchone()
            version = int(version_row["v"]) if version_row else 1
            values = (graph.graph_id, name if name is not None else current["name"],
                      description if description is not None else current["description"], Jsonb(checked),
                      Jsonb(new_context), Jsonb({**current["metadata"], **(metadata or {})}))  # fmt: skip
            cur = await conn.execute(
                "UPDATE assistants SET graph_id = %s, name = %s, description = %s, config = %s, context = %s, "
                "metadata = %s, version = %s, updated_at = now() WHERE assistant_id = %s RETURNING *",
                (*values, version, assistant_id),
            )
            row = await cur.fetchone()
            await conn.execute(
                "INSERT INTO assistant_versions (assistant_id, version, graph_id, name, description, config, context, "
                "metadata, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (assistant_id, version, *values, actor),
            )
        assert row is not None
        log.info("assistant updated", extra={"assistant_id": assistant_id, "version": version, "actor": actor})
        return _json(dict(row))

    async def set_latest(self, assistant_id: str, version: int, actor: str) -> dict[str, Any]:
        """Put an earlier (or later) version back in force."""
        if assistant_id in self._system:
            if version != 1:
                raise ApiError(404, "not_found", f"assistant {assistant_id} has no version {version} (only 1)")
            return dict(self._system[assistant_id])
        if not _is_uuid(assistant_id):
            raise not_found(assistant_id)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE assistants a SET graph_id = v.graph_id, name = v.name, description = v.description, "
                "config = v.config, context = v.context, metadata = v.metadata, version = v.version, "
                "updated_at = now() FROM assistant_versions v WHERE a.assistant_id = %s AND v.assistant_id = "
                "a.assistant_id AND v.version = %s RETURNING a.*",
                (assistant_id, version),
            )
            row = await cur.fetchone()
            if row is None:
                if await self._row(assistant_id) is None:
                    raise not_found(assistant_id)
                raise ApiError(404, "not_found", f"assistant {assistant_id} has no version {version}")
        log.info("assistant version set", extra={"assistant_id": assistant_id, "version": version, "actor": actor})
        return _json(dict(row))

    async def delete(self, assistant_id: str, actor: str) -> list[str]:
        """Delete the assistant and its versions; the ids of the threads it started (to delete them too)."""
        if assistant_id in self._system:
            raise self._system_refusal(assistant_id, "deleted")
        if not _is_uuid(assistant_id):
            raise not_found(assistant_id)
        async with self.pool.connection() as conn:
            cur = await conn.execute("DELETE FROM assistants WHERE assistant_id = %s RETURNING assistant_id",
                                     (assistant_id,))  # fmt: skip
            if await cur.fetchone() is None:
                raise not_found(assistant_id)
            cur = await conn.execute("SELECT thread_id FROM threads WHERE metadata->>'assistant_id' = %s",
                                     (assistant_id,))  # fmt: skip
            threads = [r["thread_id"] for r in await cur.fetchall()]
        log.info("assistant deleted", extra={"assistant_id": assistant_id, "actor": actor})
        return threads

