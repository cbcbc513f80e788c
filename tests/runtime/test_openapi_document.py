"""The served OpenAPI document describes what the server does: its error envelope and codes, the rules the
input guard enforces, the audit's text form, and one run body per served assistant. Real answers are
validated against the document, so a drift between the two fails here."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
import pytest
from conftest import Api

from rag.documents import DOC_ID_PATTERN
from rag.schemas import NON_BLANK
from server.input_guard import SAFE_TEXT

REF = "#/components/schemas/"


@pytest.fixture
async def doc(api: Api) -> dict[str, Any]:
    response = await api["viewer"].get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in doc["paths"].items() for method, op in item.items()]


def conforms(doc: dict[str, Any], response: httpx.Response, method: str, path: str) -> None:
    """``response`` has a documented status, and its JSON body validates against the documented schema."""
    documented = doc["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in documented, (method, path, response.status_code, sorted(documented))
    schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(response.json())


def test_every_error_is_the_envelope_and_every_operation_lists_its_codes(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    for method, path, op in operations(doc):
        codes = {int(c) for c in op["responses"] if c[0] in "45"}
        assert {500, 503} <= codes, (method, path)
        if path != "/ok":
            assert {401, 403} <= codes, (method, path)
        if "{" in path:
            assert 404 in codes, (method, path)
        if "requestBody" in op:
            assert {408, 413, 422} <= codes, (method, path)
        for code in codes - ({503} if path == "/health" else set()):  # /health's 503 is its report
            schema = op["responses"][str(code)]["content"]["application/json"]["schema"]
            allowed = [{"$ref": REF + "ErrorEnvelope"}]
            if path.startswith("/api/"):  # the shop-assistant routes answer in the seed's envelope
                allowed.append({"$ref": REF + "SeedErrorEnvelope"})
            assert schema in allowed, (method, path, code)
    conflicts = {(m, p) for m, p, op in operations(doc) if "409" in op["responses"]}
    assert {("POST", "/threads"), ("POST", "/threads/{thread_id}/runs"), ("POST", "/threads/{thread_id}/runs/wait"),
            ("POST", "/threads/{thread_id}/runs/stream"), ("POST", "/threads/{thread_id}/state"),
            ("POST", "/approvals/{thread_id}/decision"), ("DELETE", "/threads/{thread_id}"),
            ("POST", "/threads/{thread_id}/copy")} <= conflicts  # fmt: skip


def test_the_rules_the_code_enforces_are_in_the_schemas(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    ingest = schemas["KnowledgeIngestRequest"]["properties"]
    assert ingest["category"]["enum"][-1] == "case" and "shipping" in ingest["category"]["enum"]
    assert ingest["doc_id"]["anyOf"][0]["pattern"] == DOC_ID_PATTERN.pattern
    assert ingest["content"]["pattern"] == NON_BLANK and ingest["title"]["pattern"] == NON_BLANK
    filters = next(s for s in schemas["KnowledgeSearchRequest"]["properties"]["filters"]["anyOf"] if "properties" in s)
    assert filters["additionalProperties"] is False
    assert {"mode", "warehouse", "agent_type"} <= set(filters["properties"])
    search = schemas["ThreadSearch"]["properties"]
    assert search["offset"]["maximum"] == 1_000_000_000 and search["limit"]["maximum"] == 1000
    assert search["ids"]["anyOf"][0]["items"]["pattern"] == r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
    # free-form values are the guard's JSON value; every plain string carries its pattern
    metadata = schemas["ThreadCreate"]["properties"]["metadata"]
    assert metadata["additionalProperties"] == {"$ref": REF + "JsonValue"}
    assert metadata["propertyNames"] == {"pattern": SAFE_TEXT}
    assert "nested at most 32 levels" in schemas["JsonValue"]["description"]
    as_node = schemas["StateUpdate"]["properties"]["as_node"]["anyOf"][0]
    assert as_node["pattern"] == SAFE_TEXT
    thread_param = next(p for p in doc["paths"]["/threads/{thread_id}"]["get"]["parameters"] if p["in"] == "path")
    assert thread_param["schema"]["pattern"].startswith("^[A-Za-z0-9]")
    audit = doc["paths"]["/threads/{thread_id}/audit"]["get"]["responses"]["200"]["content"]
    assert set(audit) == {"application/json", "text/plain"}
    stream = doc["paths"]["/threads/{thread_id}/runs/stream"]["post"]["responses"]["200"]["content"]
    assert set(stream) == {"text/event-stream"}


def test_a_run_body_is_documented_per_served_assistant(api: Api, doc: dict[str, Any]) -> None:
    variants = doc["components"]["schemas"]["RunCreate"]["oneOf"]
    *served, created = variants
    by_id = {v["properties"]["assistant_id"]["const"]: v["properties"] for v in served}
    assert set(by_id) == set(api.runtime.registry)
    assert created["properties"]["assistant_id"]["pattern"].startswith("^[0-9a-f]{8}-")  # created ones: UUIDs
    assert by_id["approval"]["context"]["description"] == "This assistant takes no context."  # principal is ours
    # chain declares no config schema: any configurable key but the runtime's own
    configurable = by_id["chain"]["config"]["anyOf"][0]["properties"]["configurable"]["anyOf"][0]
    reserved = re.compile(configurable["propertyNames"]["not"]["pattern"])
    assert [k for k in ("user_id", "__pregel_send", "checkpoint_id", "langgraph_auth_user", "run_id", "thread_id",
                        "model_name") if not reserved.search(k)] == ["user_id", "model_name"]  # fmt: skip
    # creating an assistant: one body per graph, each with that graph's context
    creating = {v["properties"]["graph_id"]["const"]: v["properties"]
                for v in doc["components"]["schemas"]["AssistantCreate"]["oneOf"]}  # fmt: skip
    assert set(creating) == set(api.runtime.registry)
    assert creating["approval"]["context"]["description"] == "This assistant takes no context."
    strategy = doc["components"]["schemas"]["RunCreateBase"]["properties"]["multitask_strategy"]
    assert strategy["enum"] == ["reject", "enqueue", "interrupt", "rollback"] and strategy["default"] == "enqueue"


async def test_real_answers_validate_against_the_document(api: Api, doc: dict[str, Any]) -> None:
    tid = (await api["operator"].post("/threads", json={"metadata": {"k": "v"}})).json()["thread_id"]
    cases = [
        ("GET", "/threads/{thread_id}", await api["viewer"].get("/threads/ghost")),  # 404
        ("POST", "/threads", await api["operator"].post("/threads", json={"thread_id": tid})),  # 409
        ("POST", "/threads", await api["operator"].post("/threads", json={"metadata": {"a": "\u0000"}})),  # 422
        ("POST", "/threads/search", await api["viewer"].post("/threads/search", json={"limit": 0})),  # 422
        ("DELETE", "/threads/{thread_id}", await api["operator"].delete(f"/threads/{tid}")),  # 403
        ("POST", "/threads/{thread_id}/runs", await api["operator"].post(f"/threads/{tid}/runs",
                                                                         json={"assistant_id": "nope"})),  # 404
        ("POST", "/threads/{thread_id}/runs/wait", await api["operator"].post(
            f"/threads/{tid}/runs/wait", json={"assistant_id": "chain", "input": {"count": 0}})),  # 200
        ("GET", "/approvals", await api["viewer"].get("/approvals", params={"offset": -1})),  # 422
    ]
    for method, path, response in cases:
        if response.headers["content-type"].startswith("application/json"):
            conforms(doc, response, method, path)
    assert [r.status_code for *_, r in cases] == [404, 409, 422, 422, 403, 404, 200, 422]
    anonymous = await httpx.AsyncClient(transport=api["viewer"]._transport, base_url="http://rimas.test").get(
        f"/threads/{tid}"
    )
    conforms(doc, anonymous, "GET", "/threads/{thread_id}")
    assert anonymous.status_code == 401
    assert re.fullmatch(r"[0-9a-f]{32}", anonymous.json()["error"]["request_id"])


async def test_405_names_every_method_of_the_path(api: Api) -> None:
    response = await api["viewer"].request("PUT", "/threads/t-1")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    # a run id is a UUID: /runs/wait is not a run, so GET there is a wrong method, not a bad id
    wrong = await api["viewer"].get("/threads/t-1/runs/wait")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
