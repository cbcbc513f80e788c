"""Liveness (``GET /ok``) and dependency health (``GET /health``)."""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from server.auth import Viewer
from server.deps import ResourcesDep
from server.qdrant import qdrant_kind
from server.resources import Resources

router = APIRouter(tags=["health"])


@router.get("/ok", summary="Liveness probe", openapi_extra={"security": []})  # needs no key
async def ok() -> dict[str, bool]:
    """Answers as soon as the process serves HTTP; no dependency is touched."""
    return {"ok": True}


async def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = await check()
        status: dict[str, Any] = {"status": "ok", **result}
    except Exception as exc:  # a failing dependency is reported, not raised
        status = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    status["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return status


async def _database(res: Resources) -> dict[str, Any]:
    async with res.pool.connection() as conn:
        row = await (await conn.execute("SELECT max(version) AS v FROM schema_migrations")).fetchone()
    return {"kind": res.database.kind, "migration": row["v"] if row else None}


async def _checkpointer(res: Resources) -> dict[str, Any]:
    async with res.pool.connection() as conn:
        row = await (await conn.execute("SELECT max(v) AS v FROM checkpoint_migrations")).fetchone()
    return {"saver": type(res.checkpointer).__name__, "migration": row["v"] if row else None}


async def _qdrant(res: Resources) -> dict[str, Any]:
    collections = await asyncio.to_thread(res.qdrant.get_collections)
    return {"kind": qdrant_kind(res.settings), "collections": sorted(c.name for c in collections.collections)}


async def _knowledge(res: Resources) -> dict[str, Any]:
    async with res.knowledge_lock:
        sizes = await asyncio.to_thread(res.knowledge.collection_sizes)
    return {"policy_version": res.knowledge.policy.version, "embedder": res.knowledge.embedder.name, "points": sizes}


def _models(res: Resources) -> dict[str, Any]:
    models = {name: status.as_dict() for name, status in res.models.items()}
    return {"status": "ok", "dir": str(res.settings.resolved_models_dir), "models": models}


@router.get(
    "/health",
    summary="Dependency health",
    responses={503: {"description": "A required dependency is down (the same report)", "content": {"application/json": {
        "schema": {"type": "object", "additionalProperties": True}}}}},
)  # fmt: skip
async def health(res: ResourcesDep, _: Viewer) -> JSONResponse:
    """Each dependency's state: database, checkpointer, Qdrant, knowledge base, models and the LLM mode.

    200 when database, checkpointer, Qdrant and the knowledge base answer; 503 otherwise. Models and LLM
    are informational.
    """
    database, checkpointer, qdrant, knowledge = await asyncio.gather(
        _timed(lambda: _database(res)),
        _timed(lambda: _checkpointer(res)),
        _timed(lambda: _qdrant(res)),
        _timed(lambda: _knowledge(res)),
    )
    components: dict[str, Any] = {
        "database": database,
        "checkpointer": checkpointer,
        "qdrant": qdrant,
        "knowledge": knowledge,
        "models": _models(res),
        "llm": {
            "status": "ok",
            "mode": res.settings.llm_mode,
            "model": res.settings.llm_model if res.settings.llm_mode == "llm" else None,
        },
    }
    healthy = all(components[name]["status"] == "ok" for name in ("database", "checkpointer", "qdrant", "knowledge"))
    body = {
        "status": "ok" if healthy else "error",
        "service": "rimas",
        "version": version("rimas"),
        "uptime_s": round(time.time() - res.started_at, 1),
        "auth": "on" if res.settings.auth_enabled else "off",
        "components": components,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
