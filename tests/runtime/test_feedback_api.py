"""Feedback on answers through the API, on real threads of the test graphs: thumbs, ratings and corrections tied
to the right checkpoint with the prompt and answer copied from it, the exactly-one-of rule, idempotent retries,
preference pairs, stats that add up to what was posted, the JSONL export, and who may do what."""

from __future__ import annotations

import json
from typing import Any

from conftest import Api
from testgraphs.chat import REPLY

PAIR = {"chosen": "41 units of sku 12 at store 3", "rejected": "no idea"}


async def chat(api: Api, thread_id: str, *questions: str) -> list[str]:
    """Ask the chat graph each question on a new thread; the run ids, in order."""
    client = api.sdk("operator")
    await client.threads.create(thread_id=thread_id)
    for question in questions:
        await client.runs.wait(thread_id, "chat", input={"messages": [{"role": "user", "content": question}]})
    runs = await client.runs.list(thread_id, limit=10)
    return [run["run_id"] for run in sorted(runs, key=lambda run: run["created_at"])]


async def checkpoints(api: Api, thread_id: str) -> list[dict[str, Any]]:
    """The thread's history, newest first."""
    return list(await api.sdk("viewer").threads.get_history(thread_id, limit=50))


async def latest_checkpoint(api: Api, thread_id: str) -> str:
    return str((await checkpoints(api, thread_id))[0]["checkpoint"]["checkpoint_id"])


async def rate(api: Api, role: str = "operator", **body: Any) -> Any:
    return await api[role].post("/feedback", json=body)


async def db_now(api: Api) -> str:
    async with api.runtime.pool.connection() as conn:
        cur = await conn.execute("SELECT clock_timestamp() AS now")
        row = await cur.fetchone()
    return str(row["now"].isoformat())


async def test_thumbs_rating_and_correction_record_the_rater_the_checkpoint_and_the_prompt(api: Api) -> None:
    first_run, second_run = await chat(api, "fb-basic", "stock of sku 12?", "and at store 3?")
    latest = await latest_checkpoint(api, "fb-basic")
    thumbs = await rate(api, thread_id="fb-basic", thumbs=1, comment="right number")
    assert thumbs.status_code == 201, thumbs.text
    row = thumbs.json()
    assert row["kind"] == "thumbs" and row["thumbs"] == 1 and row["rating"] is None
    assert row["actor"] == "operator-1" and row["comment"] == "right number"
    assert row["checkpoint_id"] == latest and row["run_id"] == second_run  # the latest answer by default
    assert row["prompt"]["text"] == "and at store 3?"
    assert [m["role"] for m in row["prompt"]["messages"]] == ["human", "ai", "human"]
    assert row["context"]["completion"] == REPLY and row["message_id"] == row["context"]["message_id"]

    by_run = await rate(api, thread_id="fb-basic", run_id=first_run, correction="say 41 units, not 40")
    assert by_run.status_code == 201, by_run.text
    assert by_run.json()["kind"] == "correction" and by_run.json()["correction"] == "say 41 units, not 40"
    assert by_run.json()["prompt"]["text"] == "stock of sku 12?" and by_run.json()["run_id"] == first_run
    first_answer = by_run.json()["checkpoint_id"]
    assert first_answer != latest
    assert first_answer in [c["checkpoint"]["checkpoint_id"] for c in await checkpoints(api, "fb-basic")]

    stars = await rate(api, "admin", thread_id="fb-basic", checkpoint_id=first_answer, rating=4)
    assert stars.status_code == 201, stars.text
    assert stars.json()["rating"] == 4 and stars.json()["actor"] == "admin-1"
    assert stars.json()["checkpoint_id"] == first_answer and stars.json()["prompt"]["text"] == "stock of sku 12?"

    earlier = by_run.json()["message_id"]  # an earlier answer, named in the latest checkpoint
    named = await rate(api, thread_id="fb-basic", message_id=earlier, thumbs=-1)
    assert named.status_code == 201, named.text
    assert named.json()["checkpoint_id"] == latest and named.json()["message_id"] == earlier
    assert named.json()["prompt"]["text"] == "stock of sku 12?"


async def test_tool_results_and_graphs_without_messages_are_kept_as_context(api: Api) -> None:
    client = api.sdk("operator")
    await client.threads.create(thread_id="fb-agent")
    text = "refund 120.00 on order A-17"
    await client.runs.wait("fb-agent", "hitl_agent", input={"messages": [{"role": "user", "content": text}]})
    decided = await api["approver"].post("/approvals/fb-agent/decision", json={"decisions": [{"type": "approve"}]})
    assert decided.status_code == 200, decided.text
    row = (await rate(api, thread_id="fb-agent", rating=5)).json()
    assert row["prompt"]["text"] == text
    assert row["context"]["completion"].startswith("The refund went through: refunded 120.00 on order A-17")
    [tool] = row["context"]["tool_results"]
    assert tool["name"] == "issue_refund" and tool["content"] == "refunded 120.00 on order A-17"

    await client.threads.create(thread_id="fb-chain")
    await client.runs.wait("fb-chain", "chain", input={"count": 0})
    plain = await rate(api, thread_id="fb-chain", thumbs=1)
    assert plain.status_code == 201, plain.text
    assert plain.json()["prompt"] == {} and plain.json()["context"] == {"state_keys": ["count", "steps"]}


async def test_what_is_not_in_the_thread_is_not_found(api: Api) -> None:
    run_a, _ = await chat(api, "fb-a", "stock?", "and now?")
    [run_b] = await chat(api, "fb-b", "stock?")
    other = await latest_checkpoint(api, "fb-b")
    response = await rate(api, thread_id="fb-a", checkpoint_id=other, thumbs=1)
    assert response.status_code == 404 and other in response.json()["detail"] and "fb-a" in response.json()["detail"]
    response = await rate(api, thread_id="fb-a", run_id=run_b, thumbs=1)
    assert response.status_code == 404 and f"run {run_b} not found in thread fb-a" in response.json()["detail"]
    response = await rate(api, thread_id="fb-a", message_id="no-such-message", thumbs=1)
    assert response.status_code == 404 and "message_id: message no-such-message" in response.json()["detail"]
    response = await rate(api, thread_id="fb-nowhere", thumbs=1)
    assert response.status_code == 404 and "thread fb-nowhere not found" in response.json()["detail"]
    await api.sdk("operator").threads.create(thread_id="fb-empty")
    response = await rate(api, thread_id="fb-empty", thumbs=1)
    assert response.status_code == 409 and "no answer to rate" in response.json()["detail"]
    latest_a = await latest_checkpoint(api, "fb-a")  # written by the second run
    mismatch = await rate(api, thread_id="fb-a", run_id=run_a, checkpoint_id=latest_a, thumbs=1)
    assert mismatch.status_code == 409 and f"not by run_id {run_a}" in mismatch.json()["detail"]


async def test_exactly_one_of_thumbs_rating_correction_is_given(api: Api) -> None:
    await chat(api, "fb-rules", "stock?")
    cases = [
        ({}, "thumbs", "none was given"),
        ({"thumbs": 1, "rating": 3}, "rating", "thumbs and rating were given"),
        ({"rating": 2, "correction": "x"}, "correction", "rating and correction were given"),
        ({"thumbs": 0}, "thumbs", "Input should be -1 or 1"),
        ({"thumbs": None}, "thumbs", "must not be null"),
        ({"rating": 6}, "rating", "less than or equal to 5"),
        ({"rating": True}, "rating", "valid integer"),
        ({"correction": "   "}, "correction", "should match pattern"),
        ({"correction": "x" * 4001}, "correction", "at most 4000 characters"),
        ({"thumbs": 1, "comment": "y" * 4001}, "comment", "at most 4000 characters"),
        ({"thumbs": 1, "checkpoint_id": "NOT-A-UUID"}, "checkpoint_id", "should match pattern"),
        ({"thumbs": 1, "run_id": "1"}, "run_id", "should match pattern"),
    ]
    for extra, field, said in cases:
        response = await rate(api, thread_id="fb-rules", **extra)
        assert response.status_code == 422, (extra, response.text)
        assert response.json()["error"]["details"][0]["field"] == field, (extra, response.text)
        assert said in response.json()["detail"], (extra, response.text)
    both = await rate(api, thread_id="fb-rules", correction="say 41", comment="the count was off")
    assert both.status_code == 201 and both.json()["comment"] == "the count was off"


async def test_a_retry_with_the_same_idempotency_key_returns_the_same_row(api: Api) -> None:
    await chat(api, "fb-retry", "stock?")
    first = await rate(api, thread_id="fb-retry", rating=3, idempotency_key="client-1:42")
    again = await rate(api, thread_id="fb-retry", rating=3, idempotency_key="client-1:42")
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json() == first.json()
    other = await rate(api, thread_id="fb-retry", rating=1, idempotency_key="client-1:42")
    assert other.status_code == 409 and "differs in rating" in other.json()["detail"]
    someone_else = await rate(api, "admin", thread_id="fb-retry", rating=3, idempotency_key="client-1:42")
    assert someone_else.status_code == 409 and "actor" in someone_else.json()["detail"]
    async with api.runtime.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM feedback WHERE idempotency_key = 'client-1:42'")
        assert (await cur.fetchone())["n"] == 1


async def test_a_preference_pair_is_tied_to_the_checkpoint(api: Api) -> None:
    await chat(api, "fb-pair", "stock of sku 12?")
    latest = await latest_checkpoint(api, "fb-pair")
    response = await api["operator"].post("/feedback/preference-pair", json={"thread_id": "fb-pair", **PAIR})
    assert response.status_code == 201, response.text
    row = response.json()
    assert row["kind"] == "preference" and row["chosen"] == PAIR["chosen"] and row["rejected"] == PAIR["rejected"]
    assert row["checkpoint_id"] == latest and row["prompt"]["text"] == "stock of sku 12?"
    assert row["context"]["completion"] == REPLY and row["actor"] == "operator-1"
    given = {"thread_id": "fb-pair", "checkpoint_id": latest, "prompt": "how many units?", **PAIR}
    response = await api["operator"].post("/feedback/preference-pair", json=given)
    assert response.status_code == 201 and response.json()["prompt"]["text"] == "how many units?"
    same = {"thread_id": "fb-pair", "chosen": "a", "rejected": "a"}
    response = await api["operator"].post("/feedback/preference-pair", json=same)
    assert response.status_code == 409 and "rejected:" in response.json()["detail"]
    response = await api["operator"].post("/feedback/preference-pair", json={"thread_id": "fb-pair", "chosen": "a"})
    assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "rejected"


async def test_stats_add_up_to_what_was_posted(api: Api) -> None:
    since = await db_now(api)
    await chat(api, "fb-stats", "stock?")
    await api.sdk("operator").threads.create(thread_id="fb-stats-chain")
    await api.sdk("operator").runs.wait("fb-stats-chain", "chain", input={"count": 0})
    for body in ({"thumbs": 1}, {"thumbs": 1}, {"thumbs": -1}, {"rating": 5}, {"rating": 2}, {"correction": "41"}):
        assert (await rate(api, thread_id="fb-stats", **body)).status_code == 201
    assert (await rate(api, thread_id="fb-stats-chain", rating=4)).status_code == 201
    pair = await api["operator"].post("/feedback/preference-pair", json={"thread_id": "fb-stats", **PAIR})
    assert pair.status_code == 201
    stats = (await api["viewer"].get("/feedback/stats", params={"since": since})).json()
    assert stats["total"] == 8
    assert stats["by_kind"] == {"thumbs": 3, "rating": 3, "correction": 1, "preference": 1}
    assert stats["thumbs"] == {"up": 2, "down": 1}
    assert stats["rating"] == {"count": 3, "mean": round(11 / 3, 4)}
    per = {item["assistant_id"]: item for item in stats["assistants"]}
    assert set(per) == {"chat", "chain"}
    assert per["chat"]["total"] == 7 and per["chat"]["rating"] == {"count": 2, "mean": 3.5}
    assert per["chain"]["by_kind"] == {"thumbs": 0, "rating": 1, "correction": 0, "preference": 0}
    only = (await api["viewer"].get("/feedback/stats", params={"since": since, "assistant_id": "chain"})).json()
    assert only["total"] == 1 and only["rating"]["mean"] == 4.0 and only["assistant_id"] == "chain"
    later = (await api["viewer"].get("/feedback/stats", params={"since": "2999-01-01T00:00:00Z"})).json()
    assert later["total"] == 0 and later["rating"]["mean"] is None and later["assistants"] == []
    bad = await api["viewer"].get("/feedback/stats", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "since"


async def test_the_export_is_jsonl_of_what_was_posted(api: Api) -> None:
    since = await db_now(api)
    await chat(api, "fb-export", "stock of sku 12?")
    checkpoint = await latest_checkpoint(api, "fb-export")
    await rate(api, thread_id="fb-export", rating=4, comment="fine")
    await rate(api, thread_id="fb-export", thumbs=-1)
    await rate(api, thread_id="fb-export", correction="41 units")
    await api["operator"].post("/feedback/preference-pair", json={"thread_id": "fb-export", **PAIR})
    response = await api["admin"].get("/feedback/export", params={"since": since})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["kind"] for line in lines] == ["rating", "thumbs", "correction", "preference"]
    rating, thumbs, correction, pair = lines
    assert rating["prompt"] == "stock of sku 12?" and rating["completion"] == REPLY
    assert rating["rating"] == 4 and rating["comment"] == "fine" and "thumbs" not in rating
    assert rating["thread_id"] == "fb-export" and rating["checkpoint_id"] == checkpoint
    assert rating["rater"] == "operator-1" and rating["created_at"] and "completion" not in rating["context"]
    assert thumbs["thumbs"] == -1 and correction["correction"] == "41 units"
    assert pair["prompt"] == "stock of sku 12?" and pair["chosen"] == PAIR["chosen"]
    assert pair["rejected"] == PAIR["rejected"] and "completion" not in pair
    only = await api["admin"].get("/feedback/export", params={"since": since, "kind": "preference"})
    assert [json.loads(line)["kind"] for line in only.text.splitlines()] == ["preference"]
    none = await api["admin"].get("/feedback/export", params={"since": "2999-01-01T00:00:00Z"})
    assert none.status_code == 200 and none.text == ""
    bad = await api["admin"].get("/feedback/export", params={"kind": "stars"})
    assert bad.status_code == 422 and "kind" in bad.json()["detail"]


async def test_roles(api: Api) -> None:
    await chat(api, "fb-roles", "stock?")
    denied = await rate(api, "viewer", thread_id="fb-roles", thumbs=1)
    assert denied.status_code == 403 and "needs the operator role" in denied.json()["detail"]
    pair = await api["viewer"].post("/feedback/preference-pair", json={"thread_id": "fb-roles", **PAIR})
    assert pair.status_code == 403
    export = await api["operator"].get("/feedback/export")
    assert export.status_code == 403 and "needs the admin role" in export.json()["detail"]
    assert (await api["approver"].get("/feedback/export")).status_code == 403
    assert (await api["viewer"].get("/feedback/stats")).status_code == 200
