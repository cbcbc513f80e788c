"""Crons on the run queue: a stateless cron fires one run on a temporary thread that is deleted after it, a
thread's cron runs on its thread, several schedulers firing the same due cron start one run, ``end_time``
disables, a firing whose run is refused records why, and the API (LangGraph's ``CronClient``) validates, finds,
counts, changes and deletes crons with the roles it needs. A cron is made due by moving its ``next_run_date``
into the past; the test app looks for due crons every 0.2 s."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEYS, Api, serving, thread_gone, write_langgraph_json
from langgraph_sdk.errors import NotFoundError

from server.runtime import manager as run_manager
from server.runtime.crons import CronScheduler, due_crons, next_occurrence, plan

YEARLY = "0 0 1 1 *"  # never due during a test unless made due


@pytest.fixture
async def api(
    settings_factory: Callable[..., Any], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    monkeypatch.setattr(run_manager, "TEMPORARY_THREAD_GRACE_SECONDS", 0.1)
    settings = settings_factory(database_url=database_url, seed_on_start=False, train_models_on_start=False,
                                api_keys=API_KEYS, langgraph_config=write_langgraph_json(tmp_path),
                                cron_poll_seconds=0.2)  # fmt: skip
    async with serving(settings) as served:
        yield served


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, message: str, **fields: Any) -> list[logging.LogRecord]:
        return [r for r in self.records if r.getMessage() == message
                and all(getattr(r, k, None) == v for k, v in fields.items())]  # fmt: skip


@pytest.fixture
def logs() -> Iterator[Records]:
    """The runtime's log records, from INFO up (a handler on its logger: the app may replace the root's)."""
    handler, logger = Records(), logging.getLogger("server.runtime")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def until(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := await check()):
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)
    return found


async def sql(api: Api, query: str, *params: Any) -> list[dict[str, Any]]:
    async with api.runtime.pool.connection() as conn:
        cur = await conn.execute(query, params)
        return [dict(r) for r in await cur.fetchall()] if cur.description else []


async def make_due(api: Api, cron_id: str, ago: str = "1 minute") -> None:
    await sql(api, "UPDATE crons SET next_run_date = now() - %s::interval WHERE cron_id = %s", ago, cron_id)


async def cron(api: Api, cron_id: str) -> dict[str, Any]:
    [found] = [c for c in await api.sdk("viewer").crons.search(limit=1000) if c["cron_id"] == cron_id]
    return found


async def runs_of(api: Api, cron_id: str) -> list[dict[str, Any]]:
    return await sql(api, "SELECT run_id::text AS run_id, thread_id, status, actor, priority, metadata FROM runs "
                     "WHERE metadata ->> 'cron_id' = %s ORDER BY created_at", cron_id)  # fmt: skip


async def test_a_stateless_cron_fires_one_run_on_a_thread_deleted_after_it(api: Api, logs: Records) -> None:
    operator = api.sdk("operator")
    created = await operator.crons.create("chain", schedule=YEARLY, input={"count": 0}, metadata={"job": "nightly"})
    cron_id = created["cron_id"]
    assert created["thread_id"] is None and created["on_run_completed"] == "delete" and created["enabled"] is True
    assert (
        created["user_id"] == "operator-1"
        and created["schedule"] == YEARLY
        and created["metadata"] == {"job": "nightly"}
    )
    assert created["payload"] == {"assistant_id": "chain", "input": {"count": 0}, "metadata": {"job": "nightly"}}
    assert dt.datetime.fromisoformat(created["next_run_date"]).month == 1  # next 1 January, UTC

    await make_due(api, cron_id, "3 days")  # missed while no server ran: fires once, not once per missed slot
    fired = await until(lambda: _true(_fired(logs, cron_id)))
    [record] = fired
    finished = await until(lambda: _true(logs.named("run finished", run_id=record.run_id)))
    assert [r.status for r in finished] == ["success"]
    assert await thread_gone(operator, record.thread_id)  # the temporary thread went after the run, its runs with it
    after = await cron(api, cron_id)
    assert after["last_run_id"] == record.run_id and after["last_error"] is None and after["enabled"] is True
    assert dt.datetime.fromisoformat(after["next_run_date"]) > dt.datetime.now(dt.UTC)
    await asyncio.sleep(0.5)  # several more looks: nothing else fires
    assert len(_fired(logs, cron_id)) == 1


async def _true(value: Any) -> Any:
    return value


def _fired(logs: Records, cron_id: str) -> list[logging.LogRecord]:
    return logs.named("cron fired", cron_id=cron_id)


async def test_a_kept_stateless_cron_run_is_a_low_priority_run_as_its_creator(api: Api) -> None:
    created = await api.sdk("operator").crons.create("chain", schedule=YEARLY, input={"count": 1},
                                                     on_run_completed="keep")  # fmt: skip
    await make_due(api, created["cron_id"])
    [run] = await until(lambda: runs_of(api, created["cron_id"]))
    await api.sdk("viewer").runs.join(run["thread_id"], run["run_id"])
    assert run["actor"] == "operator-1" and run["priority"] == -1 and run["metadata"]["cron_id"] == created["cron_id"]
    assert (await api.sdk("viewer").threads.get_state(run["thread_id"]))["values"]["count"] == 6  # kept


async def test_a_thread_cron_runs_on_its_thread_with_the_payload(api: Api) -> None:
    operator = api.sdk("operator")
    tid = (await operator.threads.create())["thread_id"]
    created = await operator.crons.create_for_thread(tid, "chain", schedule="30 6 * * 1-5", input={"count": 10},
                                                     metadata={"team": "ops"})  # fmt: skip
    assert created["thread_id"] == tid and created["on_run_completed"] is None
    assert created["payload"]["input"] == {"count": 10}
    for firing in (1, 2):
        await make_due(api, created["cron_id"])
        runs = await until(lambda n=firing: _at_least(operator.runs.list(tid), n))
        assert len(runs) == firing
        await operator.runs.join(tid, runs[0]["run_id"])
    runs = await operator.runs.list(tid)
    assert {r["status"] for r in runs} == {"success"} and {r["multitask_strategy"] for r in runs} == {"enqueue"}
    assert all(r["metadata"]["cron_id"] == created["cron_id"] and r["metadata"]["team"] == "ops" for r in runs)
    state = await operator.threads.get_state(tid)
    assert state["values"]["count"] == 15 and state["values"]["steps"] == ["n1", "n2", "n3", "n4", "n5"] * 2
    assert (await cron(api, created["cron_id"]))["last_run_id"] == runs[0]["run_id"]  # newest first
    missing = await api["operator"].post("/threads/no-such-thread/runs/crons",
                                         json={"assistant_id": "chain", "schedule": YEARLY})  # fmt: skip
    assert missing.status_code == 404 and "no-such-thread" in missing.json()["detail"]
    await api.sdk("admin").threads.delete(tid)  # the cron goes with its thread
    assert await operator.crons.count(thread_id=tid) == 0


async def _at_least(runs: Any, n: int) -> list[dict[str, Any]] | None:
    found = await runs
    return found if len(found) >= n else None


async def test_schedulers_firing_the_same_due_cron_start_one_run(
    api: Api, settings_factory: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    """Several processes (here a second app on the same database, and two schedulers in each) fire the same due
    cron at once: one run starts, the others roll theirs back."""
    other_settings = settings_factory(
        database_url=database_url, seed_on_start=False, train_models_on_start=False, api_keys=API_KEYS,
        data_dir=tmp_path / "other", langgraph_config=write_langgraph_json(tmp_path), cron_poll_seconds=0.2,
    )  # fmt: skip
    async with serving(other_settings) as other:
        for runtime in (api.runtime, other.runtime):
            await runtime.crons.close()  # only the schedulers below look
        schedulers = [CronScheduler(runtime.manager) for runtime in (api.runtime, other.runtime) for _ in range(2)]
        created = await api.sdk("operator").crons.create("chain", schedule=YEARLY, input={"count": 0},
                                                         on_run_completed="keep")  # fmt: skip
        for firing in range(1, 6):
            await make_due(api, created["cron_id"])
            [row] = [r for r in await due_crons(api.runtime.pool) if str(r["cron_id"]) == created["cron_id"]]
            started = await asyncio.gather(*(s.fire(row) for s in schedulers))  # the same row, at once
            assert len([run for run in started if run is not None]) == 1, started
            await make_due(api, created["cron_id"])
            assert sum(await asyncio.gather(*(s.tick() for s in schedulers))) == 1  # whole looks, at once
            assert len(await runs_of(api, created["cron_id"])) == 2 * firing
    runs = await runs_of(api, created["cron_id"])
    assert len({r["thread_id"] for r in runs}) == 10  # a new thread each firing
    for run in runs:
        await api.sdk("viewer").runs.join(run["thread_id"], run["run_id"])


async def test_end_time_stops_a_cron(api: Api) -> None:
    operator = api.sdk("operator")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    ended = await operator.crons.create("chain", schedule="* * * * *", end_time=past)
    assert ended["enabled"] is False and ended["next_run_date"] is None
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    running = await operator.crons.create("chain", schedule=YEARLY, end_time=soon)
    assert running["enabled"] is False and running["next_run_date"] is None  # no firing before its end
    due = await operator.crons.create("chain", schedule="*/5 * * * *", input={"count": 0})
    assert due["enabled"] is True
    await sql(api, "UPDATE crons SET end_time = now() - interval '1 second', next_run_date = now() - interval "
              "'1 minute' WHERE cron_id = %s", due["cron_id"])  # fmt: skip
    after = await until(lambda: _disabled(api, due["cron_id"]))
    assert after["next_run_date"] is None and after["last_run_id"] is None  # it did not fire past its end
    assert await runs_of(api, due["cron_id"]) == []


async def _disabled(api: Api, cron_id: str) -> dict[str, Any] | None:
    found = await cron(api, cron_id)
    return found if not found["enabled"] else None


def test_the_next_firing_comes_after_now_in_the_crons_time_zone() -> None:
    now = dt.datetime(2026, 3, 6, 10, 30, tzinfo=dt.UTC)  # a Friday
    assert next_occurrence("0 9 * * 1-5", None, now) == dt.datetime(2026, 3, 9, 9, 0, tzinfo=dt.UTC)
    assert next_occurrence("*/15 * * * *", None, now) == dt.datetime(2026, 3, 6, 10, 45, tzinfo=dt.UTC)
    assert next_occurrence("0 9 * * *", "Europe/Paris", now) == dt.datetime(2026, 3, 7, 8, 0, tzinfo=dt.UTC)
    assert plan("0 9 * * *", None, True, now + dt.timedelta(hours=1), now) == (False, None)
    assert plan("0 9 * * *", None, False, None, now) == (False, None)
    assert plan("0 11 * * *", None, True, now + dt.timedelta(hours=1), now) == (True, now.replace(hour=11, minute=0))


async def test_a_firing_whose_run_is_refused_records_why_and_the_cron_goes_on(api: Api, logs: Records) -> None:
    admin = api.sdk("admin")
    assistant = await admin.assistants.create("chain", name="short-lived")
    created = await api.sdk("operator").crons.create(assistant["assistant_id"], schedule=YEARLY)
    await admin.assistants.delete(assistant["assistant_id"])
    await make_due(api, created["cron_id"])
    after = await until(lambda: _with_error(api, created["cron_id"]))
    assert after["last_error"].startswith("404 not_found: No assistant found") and after["enabled"] is True
    assert dt.datetime.fromisoformat(after["next_run_date"]) > dt.datetime.now(dt.UTC)
    assert after["last_run_id"] is None and await runs_of(api, created["cron_id"]) == []
    assert logs.named("cron firing started no run", cron_id=created["cron_id"])


async def _with_error(api: Api, cron_id: str) -> dict[str, Any] | None:
    found = await cron(api, cron_id)
    return found if found["last_error"] else None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"assistant_id": "chain", "schedule": "0 9 * *"}, 422, "schedule"),
        ({"assistant_id": "chain", "schedule": "61 * * * *"}, 422, "schedule"),
        ({"assistant_id": "chain", "schedule": "0 0 30 2 *"}, 422, "schedule"),
        ({"assistant_id": "chain"}, 422, "schedule"),
        ({"assistant_id": "chain", "schedule": YEARLY, "timezone": "Mars/Olympus"}, 422, "timezone"),
        ({"assistant_id": "ghost", "schedule": YEARLY}, 404, "No assistant found"),
        ({"assistant_id": "chain", "schedule": YEARLY, "context": {"store": 3}}, 422, "context"),
        ({"assistant_id": "chain", "schedule": YEARLY, "config": {"configurable": {"__pregel_x": 1}}}, 422,
         "config.configurable.__pregel_x"),
        ({"assistant_id": "chain", "schedule": YEARLY, "webhook": "http://example.com/hook"}, 422, "webhook"),
        ({"assistant_id": "chain", "schedule": YEARLY, "command": {"resume": 1}}, 422, "command"),
        ({"assistant_id": "chain", "schedule": YEARLY, "end_time": "soon"}, 422, "end_time"),
        ({"assistant_id": "chain", "schedule": YEARLY, "end_time": 1893456000}, 422, "end_time"),  # not a date
    ],
)  # fmt: skip
async def test_a_cron_that_could_not_run_is_refused_at_creation(
    api: Api, body: dict[str, Any], status: int, field: str
) -> None:
    before = await api.sdk("viewer").crons.count()
    response = await api["operator"].post("/runs/crons", json=body)
    assert response.status_code == status, response.text
    assert field in response.json()["detail"]
    if field == "schedule" and "schedule" in body:
        assert "5-field cron expression" in response.json()["detail"]  # says what is allowed
    assert await api.sdk("viewer").crons.count() == before


async def test_search_count_update_and_delete(api: Api) -> None:
    operator, viewer = api.sdk("operator"), api.sdk("viewer")
    tid = (await operator.threads.create())["thread_id"]
    mark = {"suite": "crud"}
    first = await operator.crons.create("chain", schedule="0 9 1 1 *", metadata=mark)
    second = await operator.crons.create_for_thread(tid, "chain", schedule="0 8 1 1 *", metadata=mark)
    third = await operator.crons.create("chat", schedule="0 7 1 1 *", metadata=mark, enabled=False)
    assert third["next_run_date"] is None
    found = await viewer.crons.search(metadata=mark)
    assert [c["cron_id"] for c in found] == [third["cron_id"], second["cron_id"], first["cron_id"]]  # newest first
    by_next = await viewer.crons.search(metadata=mark, sort_by="next_run_date", sort_order="asc")
    assert [c["cron_id"] for c in by_next] == [second["cron_id"], first["cron_id"], third["cron_id"]]  # nulls last
    assert [c["cron_id"] for c in await viewer.crons.search(metadata=mark, thread_id=tid)] == [second["cron_id"]]
    assert [c["cron_id"] for c in await viewer.crons.search(metadata=mark, assistant_id="chat")] == [third["cron_id"]]
    assert len(await viewer.crons.search(metadata=mark, enabled=True)) == 2
    page = await viewer.crons.search(metadata=mark, limit=1, offset=1, select=["cron_id", "schedule"])
    assert page == [{"cron_id": second["cron_id"], "schedule": "0 8 1 1 *"}]
    assert await viewer.crons.count(metadata=mark) == 3
    assert await viewer.crons.count(metadata=mark, assistant_id="chain") == 2

    changed = await operator.crons.update(first["cron_id"], schedule="15 10 * * *", input={"count": 3})
    assert changed["schedule"] == "15 10 * * *" and changed["payload"]["input"] == {"count": 3}
    assert dt.datetime.fromisoformat(changed["next_run_date"]).minute == 15 and changed["metadata"] == mark
    assert changed["updated_at"] > first["updated_at"]
    paused = await operator.crons.update(first["cron_id"], enabled=False)
    assert paused["enabled"] is False and paused["next_run_date"] is None and paused["schedule"] == "15 10 * * *"
    resumed = await operator.crons.update(first["cron_id"], enabled=True, end_time=dt.datetime(2999, 1, 1))
    assert resumed["enabled"] is True and resumed["next_run_date"] is not None
    assert resumed["end_time"] == "2999-01-01T00:00:00+00:00"
    cleared = await operator.crons.update(first["cron_id"], end_time=None)
    assert cleared["end_time"] is None and cleared["enabled"] is True
    bad = await api["operator"].patch(f"/runs/crons/{first['cron_id']}", json={"schedule": "every day"})
    assert bad.status_code == 422 and "schedule" in bad.json()["detail"]
    bad = await api["operator"].patch(f"/runs/crons/{first['cron_id']}", json={"context": {"store": 3}})
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "graph_mismatch"  # the stored graph's misfit
    assert "context" in bad.json()["detail"]
    assert (await cron(api, first["cron_id"]))["schedule"] == "15 10 * * *"  # a refused change changes nothing

    await operator.crons.delete(first["cron_id"])
    assert await viewer.crons.count(metadata=mark) == 2
    with pytest.raises(NotFoundError):
        await operator.crons.delete(first["cron_id"])
    with pytest.raises(NotFoundError):
        await operator.crons.update(first["cron_id"], enabled=False)


async def test_roles(api: Api) -> None:
    body = {"assistant_id": "chain", "schedule": YEARLY}
    tid = (await api["operator"].post("/threads", json={})).json()["thread_id"]
    assert (await api["viewer"].post("/runs/crons", json=body)).status_code == 403
    assert (await api["viewer"].post(f"/threads/{tid}/runs/crons", json=body)).status_code == 403
    admins = (await api["admin"].post("/runs/crons", json=body)).json()
    assert admins["user_id"] == "admin-1"
    assert (await api["viewer"].post("/runs/crons/search", json={})).status_code == 200
    assert (await api["viewer"].post("/runs/crons/count", json={})).status_code == 200
    for method in ("PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"enabled": False}} if method == "PATCH" else {}
        url = f"/runs/crons/{admins['cron_id']}"
        assert (await api["viewer"].request(method, url, **kwargs)).status_code == 403
        refused = await api["operator"].request(method, url, **kwargs)  # it runs as admin: changing it needs admin
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert (await api["admin"].delete(f"/runs/crons/{admins['cron_id']}")).status_code == 204
    info = (await api["viewer"].get("/info")).json()
    assert info["flags"]["crons"] is True
