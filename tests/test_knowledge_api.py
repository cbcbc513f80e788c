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


async def test_documents_are_listed_by_category_with_their_counts(app_client: httpx.AsyncClient) -> None:
    from rag.categories import document_categories
    from rag.documents import load_policy_documents

    packaged = {d.doc_id: d for d in load_policy_documents()}
    listing = (await app_client.get("/knowledge/documents")).json()
    assert listing["collection"] == "policies"
    assert [c["category"] for c in listing["categories"]] == list(document_categories())
    shipping = next(d for d in listing["documents"] if d["doc_id"] == "shipping")
    assert shipping["title"] == packaged["shipping"].title and shipping["source"] == "packaged"
    assert shipping["sections"] == len(packaged["shipping"].sections) <= shipping["chunks"]
    assert {d["doc_id"] for d in listing["documents"]} == set(packaged)
    keys = [(d["category"], d["title"].lower()) for d in listing["documents"]]
    assert keys == sorted(keys)
    counts = {c["category"]: c["documents"] for c in listing["categories"]}
    assert counts["case"] == 0 and counts["shipping"] == sum(d.category == "shipping" for d in packaged.values())

    doc = {"doc_id": "ops-gift-wrap", "title": "Gift wrapping", "category": "shipping",
           "content": "# Gift wrapping\n\n## Cost\n\nGift wrapping is free.\n\n## Cards\n\nA card can be added."}
    assert (await app_client.post("/knowledge/ingest", json=doc)).status_code == 201
    only = (await app_client.get("/knowledge/documents", params={"category": "shipping"})).json()
    assert [c["category"] for c in only["categories"]] == ["shipping"]
    mine = next(d for d in only["documents"] if d["doc_id"] == "ops-gift-wrap")
    assert (mine["source"], mine["sections"], mine["chunks"]) == ("admin", 2, 2)
    assert only["categories"][0]["documents"] == counts["shipping"] + 1
    assert {d["category"] for d in only["documents"]} == {"shipping"}
    await app_client.delete("/knowledge/documents/ops-gift-wrap")
    after = (await app_client.get("/knowledge/documents", params={"category": "shipping"})).json()
    assert "ops-gift-wrap" not in {d["doc_id"] for d in after["documents"]}

    packaged = await app_client.delete("/knowledge/documents/shipping")  # listed, but the policy file's: 409
    assert packaged.status_code == 409 and "is a packaged policy document" in packaged.json()["error"]["message"]
    replace = {"doc_id": "shipping", "title": "Shipping", "category": "shipping", "content": "# S\n\n## A\n\nText."}
    assert (await app_client.post("/knowledge/ingest", json=replace)).status_code == 409

    unknown = await app_client.get("/knowledge/documents", params={"category": "returns"})
    assert unknown.status_code == 422 and _problems(unknown)["category"].startswith("'returns' is not allowed")
    cases = (await app_client.get("/knowledge/documents", params={"collection": "cases"})).json()
    assert cases["collection"] == "cases" and cases["documents"] == []
