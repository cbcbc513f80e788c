"""Values PostgreSQL cannot store are refused at the edge with a 422 naming the field, never a 500.

One test per cause of 500 the fuzzer found (NUL characters, offsets past bigint, unpaired surrogates,
non-finite numbers, NUL in ids, nesting that poisoned every later read), each showing that the refusal left
nothing behind: the searches that used to fail for everyone still answer afterwards.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from conftest import Api


def _json(text: str) -> dict[str, Any]:
    """Send ``text`` as the body verbatim (httpx would refuse to encode a lone surrogate or NaN)."""
    return {"content": text.encode("utf-8"), "headers": {"content-type": "application/json"}}


def problem(response: httpx.Response) -> tuple[str, str]:
    """The (field, message) of a one-problem 422."""
    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    return detail["field"], detail["message"]


async def searches_still_answer(api: Api) -> None:
    for path in ("/threads/search", "/threads/count"):
        assert (await api["viewer"].post(path, json={})).status_code == 200


async def test_nul_characters_in_metadata_are_refused_everywhere(api: Api) -> None:
    tid = (await api["operator"].post("/threads", json={})).json()["thread_id"]
    bad = {"metadata": {"note": "a\u0000b"}}
    for method, path in [("POST", "/threads"), ("PATCH", f"/threads/{tid}"), ("POST", "/threads/search"),
                         ("POST", "/threads/count")]:  # fmt: skip
        response = await api["admin"].request(method, path, json=bad)
        assert problem(response) == ("metadata.note", "contains a NUL character (\\u0000), which is not allowed")
    key = await api["operator"].post("/threads", json={"metadata": {"a\u0000": 1}})
    assert problem(key) == ("metadata.a\\u0000", "this object key contains a NUL character (\\u0000), which is not "
                            "allowed")  # fmt: skip
    await searches_still_answer(api)


@pytest.mark.parametrize("offset", [2**63, 2**63 - 1, 10**9 + 1, -1])
async def test_offsets_are_bounded(api: Api, offset: int) -> None:
    tid = (await api["operator"].post("/threads", json={})).json()["thread_id"]
    search = await api["viewer"].post("/threads/search", json={"offset": offset})
    runs = await api["viewer"].get(f"/threads/{tid}/runs", params={"offset": offset})
    inbox = await api["viewer"].get("/approvals", params={"offset": offset})
    for response, field in ((search, "offset"), (runs, "offset"), (inbox, "offset")):
        assert problem(response)[0] == field
    assert (await api["viewer"].post("/threads/search", json={"offset": 10**9})).status_code == 200


@pytest.mark.parametrize("text", ['"\\ud800"', '"x\\udfff"', '"\\udc00\\ud800"'])
async def test_unpaired_surrogates_are_refused(api: Api, text: str) -> None:
    response = await api["operator"].post("/threads", **_json('{"metadata": {"a": [' + text + "]}}"))
    field, message = problem(response)
    assert field == "metadata.a[0]" and "unpaired UTF-16 surrogate" in message
    paired = await api["operator"].post("/threads", **_json('{"metadata": {"emoji": "\\ud83d\\ude00"}}'))
    assert paired.status_code == 200 and paired.json()["metadata"] == {"emoji": "\U0001f600"}
    await searches_still_answer(api)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_numbers_are_refused(api: Api, number: str) -> None:
    response = await api["operator"].post("/threads", **_json('{"metadata": {"score": ' + number + "}}"))
    assert problem(response) == ("metadata.score", f"{number} is not allowed; numbers must be finite")
    tid = (await api["operator"].post("/threads", json={})).json()["thread_id"]
    body = '{"assistant_id": "chain", "input": {"count": ' + number + "}}"
    run = await api["operator"].post(f"/threads/{tid}/runs", **_json(body))
    assert problem(run)[0] == "input.count"
    await searches_still_answer(api)


async def test_nul_in_ids_in_paths_and_filters_is_refused(api: Api) -> None:
    path = await api["viewer"].get("/threads/a%00b")
    assert problem(path) == ("path", "contains a NUL character (\\u0000), which is not allowed")
    ids = await api["viewer"].post("/threads/search", json={"ids": ["a\u0000b"]})
    assert problem(ids)[0] == "ids[0]"
    approvals = await api["viewer"].get("/approvals", params={"assistant_id": "a\u0000"})
    assert problem(approvals)[0] == "query.assistant_id"
    # well-formed but with characters ids never have: a 422 naming the pattern, not a lookup
    odd = await api["viewer"].post("/threads/search", json={"ids": ["a b"]})
    assert problem(odd)[0] == "ids[0]"
    await searches_still_answer(api)


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


async def test_deep_nesting_is_refused_before_it_is_stored(api: Api) -> None:
    limit = api.app.state.settings.max_json_depth
    deep = await api["operator"].post("/threads", json={"metadata": _nested(300)})
    field, message = problem(deep)
    assert field.startswith("metadata.x.x") and message == f"nested deeper than {limit} levels (RIMAS_MAX_JSON_DEPTH)"
    far = await api["operator"].post("/threads", **_json("[" * 100_000 + "]" * 100_000))
    assert problem(far) == ("body", f"nested deeper than {limit} levels (RIMAS_MAX_JSON_DEPTH)")
    # the body is level 1, so metadata may hold limit - 1 levels: stored and read back; one more is refused
    ok = await api["operator"].post("/threads", json={"metadata": _nested(limit - 1)})
    assert ok.status_code == 200, ok.text
    fetched = await api["viewer"].get(f"/threads/{ok.json()['thread_id']}")
    assert fetched.status_code == 200 and fetched.json()["metadata"] == _nested(limit - 1)
    assert problem(await api["operator"].post("/threads", json={"metadata": _nested(limit)}))[1].startswith("nested")
    await searches_still_answer(api)


async def test_knowledge_documents_get_the_same_rules(api: Api) -> None:
    doc = {"title": "Deep", "category": "shipping", "content": "# Deep\n\n## S\n\nText.", "metadata": _nested(100)}
    assert problem(await api["admin"].post("/knowledge/ingest", json=doc))[0].startswith("metadata.x")
    nul = {**doc, "metadata": None, "content": "# T\n\n## S\n\nText \u0000 here."}
    assert problem(await api["admin"].post("/knowledge/ingest", json=nul))[0] == "content"
    search = await api["viewer"].post("/knowledge/search", json={"query": "parcel delivery"})
    assert search.status_code == 200


async def test_everything_that_reaches_a_graph_is_checked(api: Api) -> None:
    tid = (await api["operator"].post("/threads", json={})).json()["thread_id"]
    base = {"assistant_id": "chain"}
    cases = {
        "input.count": {"input": {"count": "\u0000"}},
        "context.user": {"context": {"user": "\u0000"}},
        "config.tags[0]": {"config": {"tags": ["\u0000"]}},
        "command.resume.answer": {"command": {"resume": {"answer": "\u0000"}}},
        "metadata.why": {"metadata": {"why": "\u0000"}},
    }
    for field, body in cases.items():
        response = await api["operator"].post(f"/threads/{tid}/runs/wait", json=base | body)
        assert problem(response)[0] == field
    decision = await api["approver"].post(f"/approvals/{tid}/decision",
                                          json={"decisions": [{"type": "reject", "message": "no\u0000"}]})  # fmt: skip
    assert problem(decision)[0] == "decisions[0].message"
    state = await api["admin"].post(f"/threads/{tid}/state", **_json('{"values": {"count": NaN}}'))
    assert problem(state) == ("values.count", "NaN is not allowed; numbers must be finite")
    runs = (await api["viewer"].get(f"/threads/{tid}/runs")).json()
    assert runs == []  # nothing was recorded


async def test_a_body_that_is_not_utf8_json_is_a_422(api: Api) -> None:
    response = await api["operator"].post("/threads", content=b'{"metadata": {"a": "\xff"}}',
                                          headers={"content-type": "application/json"})  # fmt: skip
    assert problem(response) == ("body", "is not UTF-8 (invalid byte at offset 20)")
    huge_int = await api["operator"].post("/threads", **_json('{"metadata": {"n": %s}}' % ("9" * 5000)))
    assert problem(huge_int)[0] == "body"
    text_plain = await api["operator"].post("/threads", content=json.dumps({"metadata": {"a": "\u0000"}}),
                                            headers={"content-type": "text/plain"})  # fmt: skip
    assert problem(text_plain)[0] == "metadata.a"
