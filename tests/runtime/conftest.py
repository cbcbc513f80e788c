"""Fixtures of the runtime tests: a langgraph.json listing the test graphs, and the app with API keys per
role, reached through httpx and through the ``langgraph-sdk`` client (both in-process, over ASGI)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from server.app import create_app

GRAPHS = Path(__file__).parent / "testgraphs"
KEYS = {"viewer": "view-key", "operator": "op-key", "approver": "appr-key", "admin": "admin-key"}
API_KEYS = ",".join(f"{role}-1:{key}:{role}" for role, key in KEYS.items())  # named after the role: approver-1


def write_langgraph_json(folder: Path, graphs: dict[str, str] | None = None) -> Path:
    """A langgraph.json in ``folder`` serving the test graphs (absolute paths, so any cwd works)."""
    graphs = graphs or {
        name: f"{GRAPHS / name}.py:graph"
        for name in ("approval", "chain", "chat", "chat_hitl", "hitl_agent", "slow_chat", "ledger")
    }
    path = folder / "langgraph.json"
    path.write_text(json.dumps({"dependencies": ["."], "graphs": graphs}))
    return path


@dataclass
class Api:
    """The running app: an httpx client per role and SDK clients on demand."""

    app: FastAPI
    clients: dict[str, httpx.AsyncClient]

    def __getitem__(self, role: str) -> httpx.AsyncClient:
        return self.clients[role]

    def sdk(self, role: str = "admin") -> Any:  # Any: the SDK's TypedDicts are looser than its data
        return LangGraphClient(self.clients[role])

    @property
    def runtime(self) -> Any:
        return self.app.state.resources.runtime


async def thread_gone(client: Any, thread_id: str) -> bool:
    """Whether the thread is deleted within 5 s (a stateless run's temporary thread goes after its run)."""
    for _ in range(100):
        try:
            await client.threads.get(thread_id)
        except NotFoundError:
            return True
        await asyncio.sleep(0.05)
    return False


@contextlib.asynccontextmanager
async def serving(settings: Any) -> AsyncIterator[Api]:
    """The app on ``settings`` (lifespan run), with an httpx client per role."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients = {
            role: httpx.AsyncClient(transport=transport, base_url="http://rimas.test", headers={"x-api-key": key})
            for role, key in KEYS.items()
        }
        try:
            yield Api(app, clients)
        finally:
            for client in clients.values():
                await client.aclose()


@pytest.fixture
async def api(settings_factory: Callable[..., Any], database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = settings_factory(
        database_url=database_url,
        seed_on_start=False,
        api_keys=API_KEYS,
        langgraph_config=write_langgraph_json(tmp_path),
        sse_ping_seconds=1.0,
    )
    async with serving(settings) as served:
        yield served
