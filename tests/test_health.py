"""The app against the real embedded PostgreSQL and Qdrant local mode: /ok, /health, auth, errors."""

from __future__ import annotations

from typing import Any

import httpx

from server.app import create_app


async def test_ok(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/ok")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert response.headers["x-request-id"]


async def test_health_reports_every_dependency(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["auth"] == "off"
    components = body["components"]
    assert components["database"]["status"] == "ok"
    assert components["database"]["kind"] == "external"  # the test database is given by URL
    assert components["database"]["migration"] >= 1
    assert components["checkpointer"]["status"] == "ok"
    assert components["checkpointer"]["saver"] == "PooledPostgresSaver"
    assert components["qdrant"] == {**components["qdrant"], "status": "ok", "kind": "local"}
    assert components["knowledge"]["status"] == "ok"
    assert components["knowledge"]["points"]["policies"] > 0  # policy documents ingested at start-up
    assert set(components["models"]["models"]) == {"delay", "demand", "anomaly"}
    assert components["llm"]["mode"] == "deterministic"


async def test_health_is_503_when_a_dependency_is_down(app_client: httpx.AsyncClient) -> None:
    app: Any = app_client.app  # type: ignore[attr-defined]
    resources = app.state.resources
    original = resources.qdrant
    broken = type("Broken", (), {"get_collections": lambda self: (_ for _ in ()).throw(ConnectionError("down"))})
    resources.qdrant = broken()
    try:
        response = await app_client.get("/health")
    finally:
        resources.qdrant = original
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["components"]["qdrant"]["status"] == "error"
    assert "down" in body["components"]["qdrant"]["error"]
    assert body["components"]["database"]["status"] == "ok"


async def test_health_needs_a_key_when_auth_is_on(settings_factory: Any, database_url: str) -> None:
    settings = settings_factory(database_url=database_url, seed_on_start=False, api_keys="v-key:viewer")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rimas.test") as client:
            missing = await client.get("/health")
            wrong = await client.get("/health", headers={"X-API-Key": "nope"})
            right = await client.get("/health", headers={"Authorization": "Bearer v-key"})
            liveness = await client.get("/ok")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert "X-API-Key" in missing.json()["error"]["message"]
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert right.json()["auth"] == "on"
    assert liveness.status_code == 200


async def test_unknown_route_gets_the_error_envelope(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
