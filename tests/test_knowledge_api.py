"""Knowledge endpoints on the real app: cited hybrid search, admin ingestion, deletion, roles, 422s."""

from __future__ import annotations

from typing import Any

import httpx

from server.app import create_app


async def test_upgrade_question_cites_the_shipping_policy_section(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(
        "/knowledge/search", json={"query": "can a road shipment over 4 kg be upgraded to air?", "k": 3}
    )
    assert response.status_code == 200, response.text
    top = response.json()["hits"][0]
    assert top["citation_id"] == "policy:shipping#upgrades"
    assert "4" in top["text"] and top["title"]


async def test_off_topic_question_returns_nothing(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post("/knowledge/search", json={"query": "who painted the Mona Lisa?"})
    assert response.status_code == 200
    assert response.json()["hits"] == []


async def test_ingest_search_reingest_delete(app_client: httpx.AsyncClient) -> None:
    doc = {
        "doc_id": "ops-holiday-cutoff",
        "title": "Holiday cut-off",
        "category": "shipping",
        "content": "# Holiday cut-off\n\n## Cut-off\n\nOrders placed after the holiday cut-off ship in January.",
    }
    first = await app_client.post("/knowledge/ingest", json=doc)
    assert first.status_code == 201, first.text
    assert first.json()["added"] >= 1
    again = await app_client.post("/knowledge/ingest", json=doc)
    assert again.json()["added"] == 0 and again.json()["unchanged"] == first.json()["added"]

    hits = (await app_client.post("/knowledge/search", json={"query": "holiday cut-off orders ship when?"})).json()
    assert any(h["doc_id"] == "ops-holiday-cutoff" for h in hits["hits"])

    deleted = await app_client.delete("/knowledge/documents/ops-holiday-cutoff")
    assert deleted.status_code == 200 and deleted.json()["deleted_chunks"] >= 1
    assert (await app_client.delete("/knowledge/documents/ops-holiday-cutoff")).status_code == 404


async def test_bad_requests_name_the_field(app_client: httpx.AsyncClient) -> None:
    zero_k = await app_client.post("/knowledge/search", json={"query": "refund", "k": 0})
    assert zero_k.status_code == 422 and "k" in zero_k.json()["error"]["message"]
    bad_collection = await app_client.post("/knowledge/search", json={"query": "refund", "collection": "all"})
    assert bad_collection.status_code == 422 and "collection" in bad_collection.json()["error"]["message"]
    bad_filter = await app_client.post("/knowledge/search", json={"query": "refund", "filters": {"colour": "red"}})
    assert bad_filter.status_code == 422 and "colour" in bad_filter.json()["error"]["message"]


async def test_ingest_needs_admin(settings_factory: Any, database_url: str) -> None:
    settings = settings_factory(database_url=database_url, seed_on_start=False, api_keys="v:viewer,a:admin")
    app = create_app(settings)
    doc = {"title": "T", "category": "shipping", "content": "# T\n\n## S\n\nSome text about parcels."}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rimas.test") as client:
            as_viewer = await client.post("/knowledge/ingest", json=doc, headers={"X-API-Key": "v"})
            search = await client.post("/knowledge/search", json={"query": "refund"}, headers={"X-API-Key": "v"})
            as_admin = await client.post("/knowledge/ingest", json=doc, headers={"X-API-Key": "a"})
    assert as_viewer.status_code == 403 and "admin" in as_viewer.json()["error"]["message"]
    assert search.status_code == 200
    assert as_admin.status_code == 201


def _problems(response: httpx.Response) -> dict[str, str]:
    return {p["field"]: p["message"] for p in response.json()["error"]["details"]}


async def test_validation_errors_name_the_real_field(app_client: httpx.AsyncClient) -> None:
    missing = await app_client.post("/knowledge/search", json={"k": 3})
    assert missing.status_code == 422
    assert _problems(missing) == {"query": "Field required"}
    assert missing.json()["error"]["message"] == "invalid request: query: Field required"

    nested = await app_client.post("/knowledge/search", json={"query": "refund", "filters": {"mode": 3}})
    assert nested.status_code == 422
    assert list(_problems(nested)) == ["filters.mode"]
    assert "string or a list of strings" in _problems(nested)["filters.mode"]
    in_list = await app_client.post("/knowledge/search", json={"query": "refund", "filters": {"mode": ["Road", 7]}})
    assert list(_problems(in_list)) == ["filters.mode[1]"]


async def test_malformed_json_names_the_body_with_line_and_column(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(
        "/knowledge/search", content=b'{"query": "refund",\n "k": }', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"] == "body is not valid JSON (line 2, column 7)"
    assert error["details"] == [{"field": "body", "message": error["message"], "type": "json_invalid"}]


async def test_category_values_are_published_and_enforced(app_client: httpx.AsyncClient) -> None:
    schema = (await app_client.get("/openapi.json")).json()
    search = schema["components"]["schemas"]["KnowledgeSearchRequest"]["properties"]["category"]
    [enum] = [choice["enum"] for choice in search["anyOf"] if "enum" in choice]
    assert {"shipping", "refunds", "escalation", "case"} <= set(enum)
    ingest = schema["components"]["schemas"]["KnowledgeIngestRequest"]["properties"]["category"]
    assert ingest["enum"] == enum

    unknown = await app_client.post("/knowledge/search", json={"query": "refund", "category": "returns"})
    assert unknown.status_code == 422
    message = _problems(unknown)["category"]
    assert message.startswith("'returns' is not allowed; allowed: ") and "shipping" in message
    as_filter = await app_client.post("/knowledge/search", json={"query": "refund", "filters": {"category": "returns"}})
    assert as_filter.status_code == 422
    assert "filters.category: 'returns' is not allowed; allowed: " in as_filter.json()["error"]["message"]
    # the document lists the categories exactly as they are spelled, so other spellings are refused
    spelled = await app_client.post("/knowledge/search", json={"query": "refund window", "category": "Refunds"})
    assert spelled.status_code == 422
    assert _problems(spelled)["category"].startswith("'Refunds' is not allowed; allowed: ")
    exact = await app_client.post("/knowledge/search", json={"query": "refund window", "category": "refunds"})
    assert exact.status_code == 200 and exact.json()["hits"]
    assert {h["metadata"]["category"] for h in exact.json()["hits"]} == {"refunds"}

    doc = {"title": "Returns", "category": "returns", "content": "# Returns\n\n## Window\n\nThirty days."}
    bad_ingest = await app_client.post("/knowledge/ingest", json=doc)
    assert bad_ingest.status_code == 422 and "category" in _problems(bad_ingest)
