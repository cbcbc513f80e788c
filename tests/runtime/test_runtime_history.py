"""State, history (paging, summaries) and time travel: a run started from a checkpoint forks the thread."""

from __future__ import annotations

import pytest
from conftest import Api
from langgraph_sdk.errors import NotFoundError


async def test_history_lists_checkpoints_with_step_node_writes_and_paging(api: Api) -> None:
    client = api.sdk("operator")
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "chain", input={"count": 0})
    history = await client.threads.get_history(tid, limit=100)
    assert [h["metadata"]["step"] for h in history] == [5, 4, 3, 2, 1, 0, -1]
    assert [h["summary"]["nodes"] for h in history] == [[], ["n5"], ["n4"], ["n3"], ["n2"], ["n1"], ["__start__"]]
    step2 = history[3]
    assert step2["summary"]["writes"] == {"n3": ["count", "steps"]}
    assert step2["summary"]["actor"] == {"id": "operator-1", "role": "operator"}
    assert step2["values"] == {"count": 2, "steps": ["n1", "n2"]}
    assert (
        step2["created_at"] and step2["parent_checkpoint"]["checkpoint_id"] == history[4]["checkpoint"]["checkpoint_id"]
    )
    page1 = await client.threads.get_history(tid, limit=3)
    page2 = await client.threads.get_history(tid, limit=3, before=page1[-1]["checkpoint"]["checkpoint_id"])
    assert [h["metadata"]["step"] for h in page1 + page2] == [5, 4, 3, 2, 1, 0]
    via_get = (await api["viewer"].get(f"/threads/{tid}/history", params={"limit": 2})).json()
    assert [h["metadata"]["step"] for h in via_get] == [5, 4]
    at = await client.threads.get_state(tid, checkpoint_id=step2["checkpoint"]["checkpoint_id"])
    assert at["values"] == step2["values"] and at["next"] == ["n3"]
    with pytest.raises(NotFoundError):
        await client.threads.get_state(tid, checkpoint_id="1f0-not-a-checkpoint")


async def test_a_run_from_a_checkpoint_forks_the_thread(api: Api) -> None:
    client = api.sdk("operator")
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "chain", input={"count": 0})
    before = await client.threads.get_history(tid, limit=100)
    fork_point = next(h for h in before if h["metadata"]["step"] == 2)  # after n1 and n2
    forked = await client.runs.wait(tid, "chain", input=None, checkpoint_id=fork_point["checkpoint"]["checkpoint_id"])
    assert forked == {"count": 5, "steps": ["n1", "n2", "n3", "n4", "n5"]}
    after = await client.threads.get_history(tid, limit=100)
    new = [
        h for h in after if h["checkpoint"]["checkpoint_id"] not in {b["checkpoint"]["checkpoint_id"] for b in before}
    ]
    # a fork checkpoint (a copy of the fork point), then n3..n5 ran again from it
    assert [(h["metadata"]["step"], h["metadata"]["source"]) for h in new] == [
        (6, "loop"), (5, "loop"), (4, "loop"), (3, "fork"),
    ]  # fmt: skip
    assert [h["summary"]["nodes"] for h in new] == [[], ["n5"], ["n4"], ["n3"]]
    assert new[-1]["parent_checkpoint"]["checkpoint_id"] == fork_point["checkpoint"]["checkpoint_id"]
    assert new[-1]["values"] == fork_point["values"]
    assert len({h["metadata"]["run_id"] for h in new}) == 1
    state = await client.threads.get_state(tid)
    assert state["checkpoint"]["checkpoint_id"] == new[0]["checkpoint"]["checkpoint_id"]
    # an edited fork: the same checkpoint with new input changes what follows
    edited = await client.runs.wait(
        tid, "chain", input={"count": 100}, checkpoint_id=fork_point["checkpoint"]["checkpoint_id"]
    )
    assert edited["count"] == 105


async def test_state_of_a_thread_without_runs_is_empty(api: Api) -> None:
    client = api.sdk("viewer")
    tid = (await api.sdk("operator").threads.create())["thread_id"]
    state = await client.threads.get_state(tid)
    assert state["values"] == {} and state["next"] == [] and state["checkpoint"] is None
    assert await client.threads.get_history(tid) == []
    assert (await api["viewer"].get(f"/threads/{tid}/audit")).json() == {"thread_id": tid, "events": []}
