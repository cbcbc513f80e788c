"""The LangGraph Store API (``/store/*``) on PostgreSQL with pgvector, as clients use it: items put, read,
updated and deleted; searched by namespace prefix, filter and meaning; namespaces listed; bad input refused
with the field named; roles enforced. Requests go through httpx and through ``langgraph-sdk``'s store client.

The app here is the store router alone, over a stand-in runtime carrying ``item_store`` (the store opened by
:func:`server.runtime.item_store.open_item_store` on this module's database), with the role keys of
``conftest.py``.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import API_KEYS, KEYS
from fastapi import FastAPI
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph_sdk.client import LangGraphClient

from server.db import open_pool
from server.errors import install_error_handlers
from server.openapi import build_document
from server.routes import store as store_routes
from server.runtime import item_store
from server.runtime.deps import get_runtime
from server.runtime.item_store import close_item_store, open_item_store
from server.settings import Settings


@dataclass
class StandIn:
    """What the store router needs of the runtime."""

    settings: Settings
    item_store: AsyncPostgresStore


def offline_settings(**values: Any) -> Settings:
    """Settings on the offline embedder, whatever the developer's environment says."""
    return Settings(_env_file=None, openai_api_key=None, openai_base_url=None, console=False, **values)


@pytest.fixture(scope="module")
async def store(database_url: str) -> AsyncIterator[AsyncPostgresStore]:
    settings = offline_settings()
    pool = await open_pool(database_url, settings)
    opened = await open_item_store(pool, settings)
    try:
        yield opened
    finally:
        await close_item_store(opened)
        await pool.close()


def store_app(settings: Settings, store: AsyncPostgresStore) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings  # the role keys
    install_error_handlers(app)
    app.include_router(store_routes.router)
    runtime = StandIn(settings, store)
    app.dependency_overrides[get_runtime] = lambda: runtime
    return app


@dataclass
class Clients:
    by_role: dict[str, httpx.AsyncClient]

    def __getitem__(self, role: str) -> httpx.AsyncClient:
        return self.by_role[role]

    def sdk(self, role: str = "operator") -> Any:  # Any: the SDK's TypedDicts are looser than its data
        return LangGraphClient(self.by_role[role]).store


@pytest.fixture
async def api(settings_factory: Callable[..., Settings], store: AsyncPostgresStore) -> AsyncIterator[Clients]:
    app = store_app(settings_factory(api_keys=API_KEYS), store)
    transport = httpx.ASGITransport(app=app)
    clients = {role: httpx.AsyncClient(transport=transport, base_url="http://rimas.test", headers={"x-api-key": key})
               for role, key in KEYS.items()}  # fmt: skip
    clients["anonymous"] = httpx.AsyncClient(transport=transport, base_url="http://rimas.test")
    try:
        yield Clients(clients)
    finally:
        for client in clients.values():
            await client.aclose()


@pytest.fixture
def root() -> str:
    """A namespace root label of this test's own, so tests sharing the module's store do not see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


async def put(api: Clients, namespace: list[str], key: str, value: dict[str, Any], **extra: Any) -> None:
    response = await api["operator"].put("/store/items", json={"namespace": namespace, "key": key, "value": value,
                                                               **extra})  # fmt: skip
    assert response.status_code == 204, response.text


async def get(api: Clients, namespace: list[str], key: str) -> Any:
    response = await api["viewer"].get("/store/items", params={"namespace": ".".join(namespace), "key": key})
    assert response.status_code == 200, response.text
    return response.json()


async def search(api: Clients, **body: Any) -> list[dict[str, Any]]:
    response = await api["viewer"].post("/store/items/search", json=body)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def problem_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [problem["field"] for problem in response.json()["error"]["details"]]


# -- items ------------------------------------------------------------------------------------------------


async def test_an_item_is_put_read_replaced_and_deleted(api: Clients, root: str) -> None:
    namespace = [root, "memories"]
    await put(api, namespace, "prefs", {"tone": "short"})
    first = await get(api, namespace, "prefs")
    assert first["namespace"] == namespace and first["key"] == "prefs" and first["value"] == {"tone": "short"}
    assert first["created_at"] == first["updated_at"]

    await asyncio.sleep(0.01)
    await put(api, namespace, "prefs", {"tone": "detailed"})
    second = await get(api, namespace, "prefs")
    assert second["value"] == {"tone": "detailed"}  # replaced, not merged
    assert second["created_at"] == first["created_at"]
    assert datetime.fromisoformat(second["updated_at"]) > datetime.fromisoformat(first["updated_at"])

    response = await api["operator"].request("DELETE", "/store/items", json={"namespace": namespace, "key": "prefs"})
    assert response.status_code == 204 and response.content == b""
    assert await get(api, namespace, "prefs") is None
    again = await api["operator"].request("DELETE", "/store/items", json={"namespace": namespace, "key": "prefs"})
    assert again.status_code == 204  # deleting what is gone is not an error


async def test_a_missing_item_is_null_as_langgraph_server_answers(api: Clients, root: str) -> None:
    """Not a 404: the JS SDK's ``getItem`` returns the body (``null``) and throws on a 404; so does the Python
    SDK's ``get_item``."""
    response = await api["viewer"].get("/store/items", params={"namespace": f"{root}.nothing", "key": "here"})
    assert response.status_code == 200 and response.json() is None
    assert await api.sdk("viewer").get_item([root, "nothing"], key="here") is None


async def test_the_sdk_store_client_round_trip(api: Clients, root: str) -> None:
    """Every call of ``client.store``, in the SDK's wire format (the GET's namespace is dotted)."""
    sdk = api.sdk("operator")
    await sdk.put_item([root, "docs"], key="d1", value={"title": "Returns policy", "body": "30 days"})
    await sdk.put_item([root, "docs", "drafts"], key="d2", value={"title": "Draft"}, index=False, ttl=60)
    item = await sdk.get_item([root, "docs"], key="d1", refresh_ttl=True)
    assert item["value"] == {"title": "Returns policy", "body": "30 days"}
    found = await sdk.search_items([root], filter={"title": "Draft"}, limit=5)
    assert [i["key"] for i in found["items"]] == ["d2"] and found["items"][0]["score"] is None
    listed = await sdk.list_namespaces(prefix=[root])
    assert listed["namespaces"] == [[root, "docs"], [root, "docs", "drafts"]]
    await sdk.delete_item([root, "docs"], key="d1")
    assert await sdk.get_item([root, "docs"], key="d1") is None


async def test_an_item_past_its_ttl_is_gone(api: Clients, root: str) -> None:
    await put(api, [root], "short-lived", {"v": 1}, ttl=0.01)  # 0.6 s
    await put(api, [root], "kept", {"v": 2})
    assert (await get(api, [root], "short-lived"))["value"] == {"v": 1}
    await asyncio.sleep(1.0)
    assert await get(api, [root], "short-lived") is None
    assert [i["key"] for i in await search(api, namespace_prefix=[root])] == ["kept"]


# -- search -----------------------------------------------------------------------------------------------


async def test_search_by_namespace_prefix_and_filter_newest_first(api: Clients, root: str) -> None:
    await put(api, [root, "a"], "1", {"kind": "note", "rank": 1})
    await put(api, [root, "a", "deep"], "2", {"kind": "task", "rank": 2})
    await put(api, [root, "b"], "3", {"kind": "note", "rank": 3, "big": 2**70})
    await put(api, [root + "x"], "4", {"kind": "note"})  # shares the text prefix, not the namespace prefix

    assert [i["key"] for i in await search(api, namespace_prefix=[root])] == ["3", "2", "1"]
    assert [i["key"] for i in await search(api, namespace_prefix=[root, "a"])] == ["2", "1"]
    assert [i["key"] for i in await search(api, namespace_prefix=[root], filter={"kind": "note"})] == ["3", "1"]
    ne = await search(api, namespace_prefix=[root], filter={"kind": {"$ne": "note"}})
    assert [i["key"] for i in ne] == ["2"]
    assert [i["key"] for i in await search(api, namespace_prefix=[root], filter={"big": 2**70})] == ["3"]
    both = await search(api, namespace_prefix=[root], filter={"kind": "note", "rank": {"$gte": 2}})
    assert [i["key"] for i in both] == ["3"]
    assert await search(api, namespace_prefix=[root], filter={"kind": "nothing"}) == []


async def test_search_pages_with_limit_and_offset(api: Clients, root: str) -> None:
    for n in range(5):
        await put(api, [root], f"k{n}", {"n": n})
    pages = [[i["key"] for i in await search(api, namespace_prefix=[root], limit=2, offset=offset)]
             for offset in (0, 2, 4, 6)]  # fmt: skip
    assert pages == [["k4", "k3"], ["k2", "k1"], ["k0"], []]


async def test_a_query_ranks_the_item_about_it_first(api: Clients, root: str) -> None:
    await put(api, [root, "notes"], "weather", {"text": "The delivery truck was delayed by snow on the highway"})
    await put(api, [root, "notes"], "cookies", {"text": "Customers love the new chocolate cookie recipe"})
    await put(api, [root, "notes"], "tax", {"text": "Quarterly tax filing deadline for the finance team"})
    await put(api, [root, "notes"], "hidden", {"text": "Snow delayed the truck again"}, index=False)

    ranked = await search(api, namespace_prefix=[root], query="late shipment because of bad weather")
    assert ranked[0]["key"] == "weather", ranked
    scores = [i["score"] for i in ranked]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    assert "hidden" not in [i["key"] for i in ranked]  # index: false keeps an item out of semantic search
    assert (await search(api, namespace_prefix=[root], query="baking a sweet dessert"))[0]["key"] == "cookies"
    assert (await search(api, namespace_prefix=[root], query="taxes due for accounting"))[0]["key"] == "tax"


async def test_a_query_over_chosen_fields(api: Clients, root: str) -> None:
    """``index`` names the fields embedded: here only the title, so the body's topic does not count."""
    await put(api, [root], "a", {"title": "Snowstorm delays deliveries", "body": "chocolate cookies"}, index=["title"])
    await put(api, [root], "b", {"title": "New cookie recipe", "body": "snow and trucks"}, index=["title"])
    ranked = await search(api, namespace_prefix=[root], query="weather delaying shipments")
    assert [i["key"] for i in ranked] == ["a", "b"]


# -- namespaces -------------------------------------------------------------------------------------------


async def test_namespaces_by_prefix_suffix_and_depth(api: Clients, root: str) -> None:
    for namespace in ([root, "users", "ana", "prefs"], [root, "users", "bo", "prefs"], [root, "users", "bo", "notes"],
                      [root, "teams", "ops"]):  # fmt: skip
        await put(api, namespace, "k", {"v": 1})

    async def listed(**body: Any) -> list[list[str]]:
        response = await api["viewer"].post("/store/namespaces", json={"prefix": [root], **body})
        assert response.status_code == 200, response.text
        namespaces: list[list[str]] = response.json()["namespaces"]
        return namespaces

    assert await listed() == [[root, "teams", "ops"], [root, "users", "ana", "prefs"], [root, "users", "bo", "notes"],
                              [root, "users", "bo", "prefs"]]  # fmt: skip
    assert await listed(suffix=["prefs"]) == [[root, "users", "ana", "prefs"], [root, "users", "bo", "prefs"]]
    assert await listed(max_depth=2) == [[root, "teams"], [root, "users"]]
    assert await listed(max_depth=3, prefix=[root, "users"]) == [[root, "users", "ana"], [root, "users", "bo"]]
    assert await listed(prefix=[root, "*", "bo"]) == [[root, "users", "bo", "notes"], [root, "users", "bo", "prefs"]]
    assert await listed(limit=1, offset=1) == [[root, "users", "ana", "prefs"]]


# -- refusals ---------------------------------------------------------------------------------------------


async def test_bad_input_is_a_422_naming_the_field(api: Clients, root: str) -> None:
    operator, viewer = api["operator"], api["viewer"]
    dotted = await operator.put("/store/items", json={"namespace": [root, "a.b"], "key": "k", "value": {}})
    assert problem_fields(dotted) == ["namespace[1]"] and "without '.'" in dotted.json()["detail"]
    assert problem_fields(await operator.put("/store/items", json={"namespace": [root], "key": "", "value": {}})) == [
        "key"
    ]
    assert problem_fields(await operator.put("/store/items", json={"namespace": [], "key": "k", "value": {}})) == [
        "namespace"
    ]
    reserved = await operator.put("/store/items", json={"namespace": ["langgraph"], "key": "k", "value": {}})
    assert problem_fields(reserved) == ["namespace"] and "reserved" in reserved.json()["detail"]
    not_object = await operator.put("/store/items", json={"namespace": [root], "key": "k", "value": [1]})
    assert problem_fields(not_object) == ["value"]
    bad_index = await operator.put("/store/items", json={"namespace": [root], "key": "k", "value": {}, "index": True})
    assert problem_fields(bad_index) == ["index"]
    bad_ttl = await operator.put("/store/items", json={"namespace": [root], "key": "k", "value": {}, "ttl": "5"})
    assert problem_fields(bad_ttl) == ["ttl"]

    for limit in (0, 1001):
        too = await viewer.post("/store/items/search", json={"namespace_prefix": [root], "limit": limit})
        assert problem_fields(too) == ["limit"]
    assert problem_fields(await viewer.post("/store/items/search", json={"offset": -1})) == ["offset"]
    operator_typo = await viewer.post("/store/items/search", json={"filter": {"rank": {"$gtx": 1}}})
    assert problem_fields(operator_typo) == ["filter.rank"] and "$gte" in operator_typo.json()["detail"]
    assert problem_fields(await viewer.post("/store/namespaces", json={"max_depth": 0})) == ["max_depth"]
    assert problem_fields(await viewer.post("/store/namespaces", json={"suffix": [""]})) == ["suffix[0]"]

    empty_label = await viewer.get("/store/items", params={"namespace": f"{root}..x", "key": "k"})
    assert problem_fields(empty_label) == ["namespace"] and "without '.'" in empty_label.json()["detail"]
    assert problem_fields(await viewer.get("/store/items", params={"namespace": root, "key": ""})) == ["key"]
    assert problem_fields(await viewer.get("/store/items", params={"key": "k"})) == ["namespace"]
    assert await get(api, [root], "k") is None  # nothing was written


async def test_the_longest_namespace_and_key_fit_and_wider_characters_are_a_422(api: Clients, root: str) -> None:
    """ASCII at every limit fits PostgreSQL's index rows; the same lengths in 3-byte characters may not, and that
    is a 422 saying so rather than a 500."""
    longest = [root] + [f"{n}" * store_routes.MAX_LABEL for n in range(store_routes.MAX_LABELS - 1)]
    await put(api, longest, "k" * store_routes.MAX_KEY, {"v": 1}, index=["v" * 200])
    assert (await get(api, longest, "k" * store_routes.MAX_KEY))["value"] == {"v": 1}
    letters = random.Random(7)  # varied, so PostgreSQL cannot compress them under its limit
    wide = [root] + ["".join(chr(letters.randrange(0x4E00, 0x9FFF)) for _ in range(store_routes.MAX_LABEL))
                     for _ in range(store_routes.MAX_LABELS - 1)]  # fmt: skip
    response = await api["operator"].put("/store/items", json={"namespace": wide, "key": "k", "value": {}})
    assert response.status_code == 422 and "UTF-8" in response.json()["detail"], response.text


async def test_reads_need_viewer_and_writes_operator(api: Clients, root: str) -> None:
    item = {"namespace": [root], "key": "k", "value": {"v": 1}}
    assert (await api["viewer"].put("/store/items", json=item)).status_code == 403
    await put(api, [root], "k", {"v": 1})
    refused = await api["viewer"].request("DELETE", "/store/items", json={"namespace": [root], "key": "k"})
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    assert (await get(api, [root], "k"))["value"] == {"v": 1}
    assert (await api["viewer"].post("/store/namespaces", json={"prefix": [root]})).status_code == 200
    anonymous = api["anonymous"]
    assert (await anonymous.get("/store/items", params={"namespace": root, "key": "k"})).status_code == 401
    assert (await anonymous.post("/store/items/search", json={})).status_code == 401


# -- the store itself -------------------------------------------------------------------------------------


class EightDims:
    """An embedder whose vectors do not fit the table the module's store built (256 dims)."""

    name = "test:eight"
    dim = 8

    def embed(self, texts: Any) -> np.ndarray:
        return np.ones((len(texts), 8), dtype=np.float32)


async def test_an_embedder_of_other_dimensions_turns_only_semantic_search_off(
    api: Clients, store: AsyncPostgresStore, database_url: str, settings_factory: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch, root: str,
) -> None:  # fmt: skip
    """Vectors of one embedder mean nothing to another: a server started with another embedder keeps the items
    but refuses ``query`` (503, saying so) rather than failing its start or mixing vectors."""
    await put(api, [root], "k", {"v": 1})
    monkeypatch.setattr(item_store, "make_embedder", lambda *_: EightDims())
    pool = await open_pool(database_url, offline_settings())
    other = await open_item_store(pool, offline_settings())
    try:
        assert other.index_config is None
        app = store_app(settings_factory(), other)  # auth off: the local admin
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rimas.test") as client:
            response = await client.post("/store/items/search", json={"namespace_prefix": [root], "query": "v"})
            assert response.status_code == 503 and "semantic search is off" in response.json()["detail"]
            plain = await client.post("/store/items/search", json={"namespace_prefix": [root]})
            assert [i["key"] for i in plain.json()["items"]] == ["k"]
    finally:
        await close_item_store(other)
        await pool.close()


async def test_servers_starting_together_migrate_the_store_once(new_database: Callable[[str], str]) -> None:
    url = new_database("store_setup")
    settings = offline_settings(pool_max_size=8)
    pool = await open_pool(url, settings)
    try:
        stores = await asyncio.gather(*(open_item_store(pool, settings) for _ in range(4)))
        assert all(s.index_config is not None for s in stores)
        async with pool.connection() as conn:
            versions = await (await conn.execute("SELECT count(*) AS n FROM vector_migrations")).fetchone()
        assert versions["n"] == len(AsyncPostgresStore.VECTOR_MIGRATIONS)
        for opened in stores:
            await close_item_store(opened)
    finally:
        await pool.close()


def test_the_document_describes_every_store_operation() -> None:
    app = FastAPI()
    app.include_router(store_routes.router)
    doc = build_document(app, auth_enabled=True, max_depth=32)
    operations = {(method, path): op for path, item in doc["paths"].items() for method, op in item.items()}
    assert set(operations) == {("put", "/store/items"), ("get", "/store/items"), ("delete", "/store/items"),
                               ("post", "/store/items/search"), ("post", "/store/namespaces")}  # fmt: skip
    for op in operations.values():
        assert op["tags"] == ["store"] and op["summary"] and op["description"]
    label = doc["components"]["schemas"]["StorePutRequest"]["properties"]["namespace"]["items"]
    assert label["pattern"] == store_routes.LABEL_PATTERN and label["maxLength"] == store_routes.MAX_LABEL
    get_item = operations[("get", "/store/items")]
    assert "404" not in get_item["responses"]
    assert {"$ref": "#/components/schemas/StoreItem"} in get_item["responses"]["200"]["content"]["application/json"][
        "schema"]["anyOf"]  # fmt: skip
