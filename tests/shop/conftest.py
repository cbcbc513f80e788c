"""Fixtures of the shop-assistant tests: this module's database seeded with the small synthetic data (3 stores x 8
items x 400 days of sales), plain SQL access to it, and the served app with one API key per role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from server.app import create_app
from server.db import connect
from server.seed import seed_database

KEYS = {"viewer": "view-key", "operator": "op-key", "approver": "appr-key", "admin": "admin-key"}
API_KEYS = ",".join(f"{role}-1:{key}:{role}" for role, key in KEYS.items())

Clients = dict[str, httpx.AsyncClient]


@pytest.fixture(scope="module")
def seeded_url(database_url: str) -> str:
    with connect(database_url) as conn:
        seed_database(conn, seed=7, scale="small")
    return database_url


@pytest.fixture
def sql(seeded_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection with dict rows on the seeded database."""
    with connect(seeded_url) as conn:
        yield conn


@pytest.fixture
async def served(settings_factory: Callable[..., Any], seeded_url: str) -> AsyncIterator[tuple[Any, Clients]]:
    settings = settings_factory(database_url=seeded_url, seed_on_start=False, train_models_on_start=False,
                                api_keys=API_KEYS, pool_max_size=12)  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients = {role: httpx.AsyncClient(transport=transport, base_url="http://rimas.test", timeout=60,
                                           headers={"x-api-key": key}) for role, key in KEYS.items()}  # fmt: skip
        clients["anonymous"] = httpx.AsyncClient(transport=transport, base_url="http://rimas.test", timeout=60)
        try:
            yield app, clients
        finally:
            for client in clients.values():
                await client.aclose()


@pytest.fixture
def http(served: tuple[Any, Clients]) -> Clients:
    return served[1]
