"""API docs served offline: Swagger UI, ReDoc and their assets from the installed package, behind the viewer role."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from server.app import create_app

PAGES = ("/docs", "/redoc")
ASSETS = {
    "/docs/static/swagger-ui-bundle.js": "text/javascript",
    "/docs/static/swagger-ui.css": "text/css",
    "/docs/static/redoc.standalone.js": "text/javascript",
    "/docs/static/favicon.png": "image/png",
}


@pytest.fixture
async def auth_client(settings_factory: Any, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with keys configured: a viewer key ``v`` and an admin key ``a``."""
    settings = settings_factory(database_url=database_url, seed_on_start=False, train_models_on_start=False,
                                api_keys="v:viewer,a:admin")  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client


def _urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']|spec-url=["']([^"']+)["']""", html)


async def test_pages_load_only_local_assets(app_client: httpx.AsyncClient) -> None:
    loaded: set[str] = set()
    for page in PAGES:
        response = await app_client.get(page)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert not re.search(r"https?://", html), f"{page} references a remote URL"
        urls = {u for groups in _urls(html) for u in groups if u}
        assert "/openapi.json" in urls
        for url in urls - {"/openapi.json"}:
            assert url in ASSETS, f"{page} loads {url}, which is not served"
        loaded |= urls
    assert set(ASSETS) <= loaded


async def test_assets_and_schema_answer(app_client: httpx.AsyncClient) -> None:
    for url, media_type in ASSETS.items():
        response = await app_client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith(media_type)
        assert len(response.content) > 1000
    assert (await app_client.get("/docs/static/../../server/settings.py")).status_code == 404
    assert (await app_client.get("/docs/static/index.html")).status_code == 404
    schema = (await app_client.get("/openapi.json")).json()
    assert "/knowledge/search" in schema["paths"]
    scheme = schema["components"]["securitySchemes"]["ApiKey"]  # Swagger UI's "Authorize" button
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    assert schema["security"] == [{"ApiKey": []}]
    assert schema["paths"]["/ok"]["get"]["security"] == []  # the one open route
    assert "security" not in schema["paths"]["/health"]["get"]
    assert "/docs" not in schema["paths"] and "/openapi.json" not in schema["paths"]


async def test_every_docs_route_needs_a_viewer_key(auth_client: httpx.AsyncClient) -> None:
    for url in (*PAGES, "/openapi.json", *ASSETS):
        anonymous = await auth_client.get(url)
        assert anonymous.status_code == 401, url
        assert anonymous.headers["www-authenticate"].startswith("Basic ")  # the browser asks for the key
        wrong = await auth_client.get(url, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401, url
        assert (await auth_client.get(url, headers={"X-API-Key": "v"})).status_code == 200, url
        assert (await auth_client.get(url, headers={"Authorization": "Bearer a"})).status_code == 200, url
    assert (await auth_client.get("/ok")).status_code == 200


async def test_a_browser_passes_the_key_as_basic_credentials_on_docs_routes_only(
    auth_client: httpx.AsyncClient,
) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(b"anyone:v").decode()}
    for url in (*PAGES, "/openapi.json", *ASSETS):
        assert (await auth_client.get(url, headers=basic)).status_code == 200, url
    wrong = {"Authorization": "Basic " + base64.b64encode(b"anyone:nope").decode()}
    assert (await auth_client.get("/docs", headers=wrong)).status_code == 401
    api = await auth_client.get("/health", headers=basic)
    assert api.status_code == 401 and api.headers["www-authenticate"] == "Bearer"
