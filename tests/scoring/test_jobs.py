"""Batch jobs and the event micro-batcher on a real database: the job lifecycle, a job whose process died
(expired lease) taken over and finished once, the attempts limit, events stored before they are accepted and
flushed by count, by age and by one process only."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import BASE_ORDER, order, rows, to_csv
from psycopg_pool import AsyncConnectionPool

import server.scoring_jobs as jobs
from server.scoring_jobs import ScoringJobs, ScoringSettings, accept_events, get_batch_job, submit_batch
from tools.deps import ToolDeps


def runner(pool: AsyncConnectionPool[Any], **settings: Any) -> ScoringJobs:
    values: dict[str, Any] = {"batch_chunk_rows": 3, "events_flush_rows": 3, "events_flush_seconds": 60.0}
    return ScoringJobs(pool, ScoringSettings(**{**values, **settings}), runtime=None)


def upload(n_good: int = 7) -> bytes:
    good = [order(order_id=f"J-{i}", discount_offered=5 + 10 * i) for i in range(n_good)]
    return to_csv([*good[:2], order(order_id="J-bad", gender="X"), *good[2:]])


async def test_a_job_goes_pending_processing_completed_with_progress_and_errors(deps: ToolDeps) -> None:
    job_id = await submit_batch(deps.pool, upload(), filename="orders.csv", created_by="operator-1")
    job = await get_batch_job(deps.pool, job_id)
    assert job is not None and job["status"] == "pending" and job["rows_total"] == 0
    assert await runner(deps.pool).run_batch_once() is True
    job = await get_batch_job(deps.pool, job_id)
    assert job is not None
    assert (job["status"], job["rows_total"], job["rows_ok"], job["rows_failed"]) == ("completed", 8, 7, 1)
    assert job["errors"] == [
        {
            "row": 4,
            "field": "gender",
            "allowed": ["F", "M"],
            "message": "line 4: gender: unknown value 'X' (allowed: F, M)",
        }
    ]
    assert job["summary"]["rows_done"] == 8 and job["attempts"] == 1 and job["finished_at"] is not None
    assert sum(job["summary"]["deviations"].values()) == len(await rows(deps.pool, "SELECT 1 FROM deviations"))
    stored = await rows(deps.pool, "SELECT count(*) AS n, count(DISTINCT batch_job_id) AS jobs FROM predictions")
    assert stored[0]["n"] == 7 and stored[0]["jobs"] == 1
    assert await runner(deps.pool).run_batch_once() is False  # nothing left


async def test_an_unusable_file_fails_the_job_naming_the_problem(deps: ToolDeps) -> None:
    missing = to_csv([{k: v for k, v in BASE_ORDER.items() if k != "discount_offered"}])
    job_id = await submit_batch(deps.pool, missing, filename="x.csv", created_by="t")
    await runner(deps.pool).run_batch_once()
    job = await get_batch_job(deps.pool, job_id)
    assert job is not None and job["status"] == "failed"
    assert job["errors"][0]["field"] == "discount_offered" and "missing column" in job["errors"][0]["message"]
    not_csv = await submit_batch(deps.pool, b'"unterminated,\n' + b"x" * 10, filename=None, created_by="t")
    await runner(deps.pool).run_batch_once()
    job = await get_batch_job(deps.pool, not_csv)
    assert job is not None and job["status"] == "failed" and job["errors"][0]["field"]


async def test_a_job_whose_process_died_is_taken_over_and_finished_once(
    deps: ToolDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first process commits one chunk, then dies; once its lease expires another process resumes after
    that chunk. Every order ends with one prediction and the counts are those of one complete run."""
    job_id = await submit_batch(deps.pool, upload(), filename="orders.csv", created_by="t")
    first_chunk = asyncio.Event()

    async def hang(runtime: Any, ids: Any, actor: str = "") -> list[str]:
        first_chunk.set()
        await asyncio.Event().wait()  # the process dies here, after its first chunk committed
        return []

    async def no_goodbye(self: Any, job_id: str, attempt: int) -> None:  # a crash hands nothing back
        return None

    monkeypatch.setattr(jobs, "auto_start", hang)
    monkeypatch.setattr(ScoringJobs, "_release", no_goodbye)
    dying = asyncio.create_task(runner(deps.pool, batch_lease_seconds=30).run_batch_once())
    await asyncio.wait_for(first_chunk.wait(), 30)
    dying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dying
    monkeypatch.undo()
    job = await get_batch_job(deps.pool, job_id)
    assert job is not None and job["status"] == "processing" and 0 < job["summary"]["rows_done"] < 8
    done_before = job["summary"]["rows_done"]

    other = runner(deps.pool)
    assert await other.run_batch_once() is False  # its lease still holds: nobody else takes it
    async with deps.pool.connection() as conn:
        await conn.execute("UPDATE batch_jobs SET lease_expires_at = now() - interval '1 second'")
    assert await other.run_batch_once() is True
    job = await get_batch_job(deps.pool, job_id)
    assert job is not None
    assert (job["status"], job["attempts"], job["rows_ok"], job["rows_failed"]) == ("completed", 2, 7, 1)
    assert len(job["errors"]) == 1 and job["summary"]["rows_done"] == 8 and done_before == 3
    counted = await rows(deps.pool, "SELECT count(*) AS n, count(DISTINCT order_id) AS orders FROM predictions")
    assert counted[0]["n"] == counted[0]["orders"] == 7


async def test_a_job_claimed_too_often_fails(deps: ToolDeps) -> None:
    job_id = await submit_batch(deps.pool, upload(), filename=None, created_by="t")
    async with deps.pool.connection() as conn:
        await conn.execute(
            "UPDATE batch_jobs SET status = 'processing', attempts = 3, lease_expires_at = now() - interval '1 minute'"
        )
    await runner(deps.pool, batch_max_attempts=3).run_batch_once()
    job = await get_batch_job(deps.pool, job_id)
    assert job is not None and job["status"] == "failed" and "gave up after 3 attempts" in job["errors"][0]["message"]


async def test_a_process_that_lost_its_lease_stops_without_counting_twice(deps: ToolDeps) -> None:
    job_id = await submit_batch(deps.pool, upload(), filename=None, created_by="t")
    first = runner(deps.pool)
    async with deps.pool.connection() as conn:  # as if the claim happened and another process then took over
        await conn.execute("UPDATE batch_jobs SET status = 'processing', attempts = 2")
    with pytest.raises(jobs.LeaseLost):
        async with deps.pool.connection() as conn, conn.transaction():
            await first._fence(conn, job_id, 1, "rows_ok = rows_ok + %s", (5,))
    job = await get_batch_job(deps.pool, job_id)
    assert job is not None and job["rows_ok"] == 0


# -- events ---------------------------------------------------------------------------------------------------------


async def test_events_are_stored_before_they_are_accepted(deps: ToolDeps) -> None:
    ids = await accept_events(deps.pool, [order(order_id="E-1"), order(order_id="E-2")], "operator-1")
    assert len(ids) == 2 and ids[1] == ids[0] + 1
    stored = await rows(
        deps.pool, "SELECT payload->>'order_id' AS o, received_by, processed_at FROM order_events ORDER BY event_id"
    )
    assert [(r["o"], r["received_by"], r["processed_at"]) for r in stored] == [
        ("E-1", "operator-1", None),
        ("E-2", "operator-1", None),
    ]


async def test_events_are_flushed_when_enough_wait(deps: ToolDeps) -> None:
    flusher = runner(deps.pool, events_flush_rows=3)
    await accept_events(deps.pool, [order(order_id="F-1"), order(order_id="F-2")], "t")
    assert await flusher.flush_events_once() is False  # 2 of 3, and young
    ids = await accept_events(deps.pool, [order(order_id="F-3"), order(order_id="F-1", discount_offered=50)], "t")
    assert await flusher.flush_events_once() is True  # the first 3 go
    waiting = await rows(deps.pool, "SELECT event_id FROM order_events WHERE processed_at IS NULL")
    assert [r["event_id"] for r in waiting] == [ids[1]]
    micro = await rows(deps.pool, "SELECT * FROM batch_jobs WHERE source = 'stream'")
    assert len(micro) == 1 and micro[0]["status"] == "completed" and micro[0]["rows_ok"] == 3
    stored = await rows(deps.pool, "SELECT order_id, source, batch_job_id FROM predictions ORDER BY order_id")
    assert [(r["order_id"], r["source"]) for r in stored] == [("F-1", "stream"), ("F-2", "stream"), ("F-3", "stream")]
    assert {r["batch_job_id"] for r in stored} == {micro[0]["batch_job_id"]}


async def test_events_are_flushed_when_the_oldest_is_old_enough(deps: ToolDeps) -> None:
    flusher = runner(deps.pool, events_flush_rows=1000, events_flush_seconds=0.3)
    await accept_events(deps.pool, [order(order_id="T-1")], "t")
    assert await flusher.flush_events_once() is False
    await asyncio.sleep(0.4)
    assert await flusher.flush_events_once() is True
    assert (await rows(deps.pool, "SELECT count(*) AS n FROM predictions"))[0]["n"] == 1


async def test_bad_events_are_reported_by_event_id_and_the_rest_scored(deps: ToolDeps) -> None:
    ids = await accept_events(
        deps.pool, [order(order_id="B-1"), order(order_id="B-2", warehouse_block="Q"), order(order_id="B-3")], "t"
    )
    assert await runner(deps.pool).flush_events_once() is True
    micro = (await rows(deps.pool, "SELECT * FROM batch_jobs WHERE source = 'stream'"))[0]
    assert (micro["rows_ok"], micro["rows_failed"]) == (2, 1)
    assert micro["errors"][0]["row"] == ids[1] and micro["errors"][0]["field"] == "warehouse_block"


async def test_two_processes_never_score_the_same_event(deps: ToolDeps) -> None:
    await accept_events(deps.pool, [order(order_id=f"P-{i}") for i in range(6)], "t")
    one, two = runner(deps.pool, events_flush_rows=3), runner(deps.pool, events_flush_rows=3)
    done = await asyncio.gather(one.flush_events_once(force=True), two.flush_events_once(force=True))
    assert done == [True, True]
    micro = await rows(deps.pool, "SELECT batch_job_id, summary FROM batch_jobs WHERE source = 'stream'")
    spans = sorted(tuple(m["summary"]["events"]) for m in micro)
    assert len(spans) == 2 and spans[0][1] < spans[1][0]  # disjoint ranges of event ids
    events = await rows(
        deps.pool,
        "SELECT count(*) AS n, count(DISTINCT batch_job_id) AS b FROM order_events WHERE processed_at IS NOT NULL",
    )
    assert events[0]["n"] == 6 and events[0]["b"] == 2


async def test_events_wait_for_a_delay_model(deps: ToolDeps) -> None:
    deps.models = {}
    await accept_events(deps.pool, [order(order_id="W-1")], "t")
    with pytest.raises(jobs.ScoringUnavailable):
        await runner(deps.pool).flush_events_once(force=True)
    waiting = await rows(deps.pool, "SELECT processed_at FROM order_events")
    assert waiting[0]["processed_at"] is None  # kept for when a model is there


async def test_jobs_wait_for_a_delay_model_without_using_their_attempts(deps: ToolDeps) -> None:
    job_id = await submit_batch(deps.pool, upload(), filename=None, created_by="t")
    deps.models = {}
    with pytest.raises(jobs.ScoringUnavailable):
        await runner(deps.pool).run_batch_once()
    job = await get_batch_job(deps.pool, job_id)
    assert job is not None and (job["status"], job["attempts"]) == ("pending", 0)


async def test_a_job_interrupted_by_a_shutdown_is_handed_back_at_once(
    deps: ToolDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await submit_batch(deps.pool, upload(), filename=None, created_by="t")
    first_chunk = asyncio.Event()

    async def hang(runtime: Any, ids: Any, actor: str = "") -> list[str]:
        first_chunk.set()
        await asyncio.Event().wait()
        return []

    monkeypatch.setattr(jobs, "auto_start", hang)
    stopping = asyncio.create_task(runner(deps.pool, batch_lease_seconds=300).run_batch_once())
    await asyncio.wait_for(first_chunk.wait(), 30)
    stopping.cancel()  # what close() does on SIGTERM
    with pytest.raises(asyncio.CancelledError):
        await stopping
    monkeypatch.undo()
    job = await get_batch_job(deps.pool, job_id)
    assert job is not None and (job["status"], job["attempts"], job["summary"]["rows_done"]) == ("pending", 0, 3)
    assert await runner(deps.pool).run_batch_once() is True  # no lease to wait for
    job = await get_batch_job(deps.pool, job_id)
    assert job is not None and (job["status"], job["attempts"], job["rows_ok"]) == ("completed", 1, 7)
