"""Background scoring in every server (and worker) process: restart-safe CSV batch jobs and the event micro-batcher.

**Batch jobs.** ``POST /predict/batch`` stores the upload in ``batch_jobs.input`` (status ``pending``) and
answers 202. Each process's job loop claims one job at a time (``FOR UPDATE SKIP LOCKED``): a ``pending`` one,
or a ``processing`` one whose lease expired (its process died). A claim increments ``attempts``; that number
fences the job: every write of the claimant checks it, so a process that lost its lease stops at its next chunk.
The file is parsed (unusable: ``failed`` with the reason, e.g. a missing column or a file that is not CSV), then
scored in chunks of ``RIMAS_BATCH_CHUNK_ROWS``; each chunk's predictions and deviations commit in the same
transaction as the job's progress (``rows_ok``, ``rows_failed``, the first 1,000 errors with line and field,
``summary.rows_done``), so a job taken over after a crash resumes after its last committed chunk, and anything
re-done is an upsert by order id. A shutdown hands the job back at once (``pending``, the attempt not
counted); a job claimed more than ``RIMAS_BATCH_MAX_ATTEMPTS`` times fails.

**Events.** ``POST /events`` inserts every event into ``order_events`` before it answers 202. The flusher scores
the unprocessed events (source ``stream``) when ``RIMAS_EVENTS_FLUSH_ROWS`` (1,000) are waiting or the oldest
is ``RIMAS_EVENTS_FLUSH_SECONDS`` (15 s) old: it claims them with ``FOR UPDATE SKIP LOCKED`` (two processes
never score the same event), records the micro-batch as a ``batch_jobs`` row (source ``stream``, errors by
event id), scores, and marks them processed, all in one transaction.

After each committed chunk or micro-batch, the deviations at the policy's auto-start level that have no thread
yet are started (:func:`server.deviation_starter.start_deviation_threads`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.csvio import CsvRows
from ml.errors import InputError, rows_with_errors
from server.deviation_starter import riskiest_first, start_deviation_threads
from server.runtime.core import Runtime
from tools.deps import ToolDeps, current
from tools.scoring import Scored, ScoringResult, ScoringUnavailable, read_csv_bytes, score_chunks, score_records
from tools.scoring import write_scored as write_scores

log = logging.getLogger(__name__)

MAX_ERRORS = 1000
"""Errors kept on a job (``rows_failed`` counts them all)."""
AUTO_START_ACTOR = "system:auto-start"
STARTERS = 4
"""Deviation threads started at once by :func:`auto_start`."""


class ScoringSettings(BaseSettings):
    """The scoring runner's knobs (environment, prefix ``RIMAS_``)."""

    model_config = SettingsConfigDict(env_prefix="RIMAS_", env_file=".env", env_ignore_empty=True, extra="ignore")

    events_flush_rows: int = Field(1000, ge=1, le=100_000, description="Score the waiting events once this many wait.")
    events_flush_seconds: float = Field(15.0, gt=0, description="... or once the oldest has waited this long.")
    batch_chunk_rows: int = Field(5000, ge=1, le=100_000, description="Rows per committed chunk of a batch job.")
    batch_lease_seconds: float = Field(60.0, ge=1, description="A job whose process stops renewing this is taken over.")
    batch_max_attempts: int = Field(3, ge=1, le=20, description="Claims of a job before it is failed.")
    scoring_poll_seconds: float = Field(1.0, gt=0, description="Idle loops look for jobs and due events this often.")


class LeaseLost(Exception):
    """Another process took the job over (this one's lease expired)."""


async def auto_start(runtime: Runtime | None, deviation_ids: Sequence[str], actor: str = AUTO_START_ACTOR) -> list[str]:
    """Start the deviation threads of ``deviation_ids`` (``STARTERS`` slices at once: each start waits on the
    database, and this process's workers may be busy executing the threads already started); a failure is
    logged (those deviations stay open), never raised."""
    ids = list(dict.fromkeys(deviation_ids))
    if not ids or runtime is None:
        return await start_deviation_threads(runtime, ids, actor=actor)
    ids = await riskiest_first(runtime.pool, ids)
    slices = [ids[i::STARTERS] for i in range(min(STARTERS, len(ids)))]

    async def start(some: list[str]) -> list[str]:
        try:
            return await start_deviation_threads(runtime, some, actor=actor)
        except Exception:
            log.exception("starting deviation threads failed; the deviations stay open", extra={"count": len(some)})
            return []

    started = await asyncio.gather(*(start(some) for some in slices))
    return [thread for part in started for thread in part]


# -- reading and submitting jobs ----------------------------------------------------------------------------------

_JOB_COLUMNS = """batch_job_id::text AS batch_job_id, source, filename, status, rows_total, rows_ok, rows_failed,
    errors, attempts, created_by, created_at, started_at, finished_at, updated_at, summary"""


async def submit_batch(pool: AsyncConnectionPool[Any], data: bytes, *, filename: str | None, created_by: str) -> str:
    """Store an upload as a pending job; returns its id."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO batch_jobs (batch_job_id, source, filename, status, input, created_by) "
            "VALUES (gen_random_uuid(), 'batch', %s, 'pending', %s, %s) RETURNING batch_job_id::text AS id",
            (filename, data, created_by),
        )
        row = await cur.fetchone()
    assert row is not None
    return str(row["id"])


async def get_batch_job(pool: AsyncConnectionPool[Any], batch_job_id: str) -> dict[str, Any] | None:
    """A job's status and progress (None when there is no such job)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM batch_jobs WHERE batch_job_id = %s::uuid",  # noqa: S608 (constant columns)
            (batch_job_id,),
        )
        return await cur.fetchone()


async def accept_events(
    pool: AsyncConnectionPool[Any], payloads: Sequence[dict[str, Any]], received_by: str
) -> list[int]:
    """Store events (committed when this returns); their ids, in order."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO order_events (payload, received_by) SELECT p, %s FROM unnest(%s::jsonb[]) WITH ORDINALITY "
            "AS e(p, n) ORDER BY n RETURNING event_id",
            (received_by, [Jsonb(p) for p in payloads]),
        )
        return sorted(int(row["event_id"]) for row in await cur.fetchall())


# -- the runner ---------------------------------------------------------------------------------------------------


class ScoringJobs:
    """This process's batch-job loop and event flusher."""

    def __init__(self, pool: AsyncConnectionPool[Any], settings: ScoringSettings, runtime: Runtime | None) -> None:
        self.pool = pool
        self.settings = settings
        self.runtime = runtime
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._jobs_wake = asyncio.Event()
        self._events_wake = asyncio.Event()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(self.run_batch_once, self._jobs_wake), name="batch-jobs"),
            asyncio.create_task(self._loop(self.flush_events_once, self._events_wake), name="event-flush"),
        ]

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def wake_jobs(self) -> None:
        self._jobs_wake.set()

    def wake_events(self) -> None:
        self._events_wake.set()

    async def _loop(self, step: Any, wake: asyncio.Event) -> None:
        waiting = False  # said once that jobs and events wait for a model, not every poll
        while not self._closing:
            wake.clear()
            try:
                busy = await step()
                waiting = False
            except ScoringUnavailable as exc:
                if not waiting:
                    log.warning("scoring waits for a model: %s", exc)
                waiting, busy = True, False
            except Exception:
                log.exception("scoring loop step failed; retrying")
                busy = False
            if not busy:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancellation of close()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.scoring_poll_seconds):
                        await wake.wait()

    # -- batch jobs -------------------------------------------------------------------------------------------

    async def run_batch_once(self) -> bool:
        """Claim and process one job; False when there was none. Without a delay model nothing is claimed
        (ScoringUnavailable): the jobs wait for one rather than use up their attempts."""
        _require_model()
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE batch_jobs SET status = 'processing', attempts = attempts + 1, updated_at = now(), "
                "lease_expires_at = now() + make_interval(secs => %(lease)s), started_at = coalesce(started_at, now()) "
                "WHERE batch_job_id = (SELECT batch_job_id FROM batch_jobs WHERE input IS NOT NULL AND "
                "(status = 'pending' OR (status = 'processing' AND lease_expires_at < now())) "
                "ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
                "RETURNING batch_job_id::text AS id, input, attempts, filename, summary, "
                "jsonb_array_length(errors) AS kept_errors",
                {"lease": self.settings.batch_lease_seconds},
            )
            job = await cur.fetchone()
        if job is None:
            return False
        log.info("batch job claimed", extra={"batch_job_id": job["id"], "attempt": job["attempts"]})
        renewer = asyncio.create_task(self._renew(job["id"], job["attempts"]))
        try:
            await self._process(job)
        except LeaseLost:
            log.warning("batch job taken over by another process", extra={"batch_job_id": job["id"]})
        except asyncio.CancelledError:  # shutting down: hand the job back at once instead of when the lease ends
            await self._release(job["id"], job["attempts"])
            raise
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        return True

    async def _release(self, job_id: str, attempt: int) -> None:
        """Put an interrupted job back to ``pending`` (this attempt does not count); it resumes after its last
        committed chunk in whichever process claims it next."""
        try:
            async with self.pool.connection() as conn:
                await conn.execute(
                    "UPDATE batch_jobs SET status = 'pending', lease_expires_at = NULL, attempts = attempts - 1, "
                    "updated_at = now() WHERE batch_job_id = %s AND attempts = %s AND status = 'processing'",
                    (job_id, attempt),
                )
            log.info("batch job handed back at shutdown", extra={"batch_job_id": job_id})
        except Exception:  # the lease then runs out and another process takes the job over
            log.exception("could not hand the batch job back", extra={"batch_job_id": job_id})

    async def _renew(self, job_id: str, attempt: int) -> None:
        while True:
            await asyncio.sleep(self.settings.batch_lease_seconds / 3)
            async with self.pool.connection() as conn:
                await conn.execute(
                    "UPDATE batch_jobs SET lease_expires_at = now() + make_interval(secs => %s) "
                    "WHERE batch_job_id = %s AND attempts = %s AND status = 'processing'",
                    (self.settings.batch_lease_seconds, job_id, attempt),
                )

    async def _fence(
        self, conn: AsyncConnection[Any], job_id: str, attempt: int, sets: str, params: Sequence[Any]
    ) -> None:
        """Update the job only while this claim holds it; raise LeaseLost otherwise."""
        cur = await conn.execute(
            f"UPDATE batch_jobs SET {sets}, updated_at = now(), "  # noqa: S608 (``sets`` is written in this module)
            "lease_expires_at = now() + make_interval(secs => %s) "
            "WHERE batch_job_id = %s AND attempts = %s AND status = 'processing' RETURNING 1",
            (*params, self.settings.batch_lease_seconds, job_id, attempt),
        )
        if await cur.fetchone() is None:
            raise LeaseLost(job_id)

    async def _finish(
        self, job_id: str, attempt: int, status: str, errors: list[dict[str, Any]] | None, summary: dict[str, Any]
    ) -> None:
        sets = "status = %s, finished_at = now(), summary = summary || %s"
        params: list[Any] = [status, Jsonb(summary)]
        if errors is not None:
            sets += ", errors = %s"
            params.append(Jsonb(errors))
        async with self.pool.connection() as conn, conn.transaction():
            await self._fence(conn, job_id, attempt, sets, params)
            await conn.execute("UPDATE batch_jobs SET lease_expires_at = NULL WHERE batch_job_id = %s", (job_id,))
        log.info(
            f"batch job {status}",
            extra={"batch_job_id": job_id, **{k: v for k, v in summary.items() if k in ("rows_done", "deviations")}},
        )

    async def _process(self, job: dict[str, Any]) -> None:
        job_id, attempt = job["id"], job["attempts"]
        if attempt > self.settings.batch_max_attempts:
            message = f"gave up after {attempt - 1} attempts (each process working on it stopped)"
            await self._finish(job_id, attempt, "failed", [{"row": None, "field": None, "message": message}], {})
            return
        try:
            rows = await asyncio.to_thread(read_csv_bytes, bytes(job["input"]), source=job["filename"] or "file")
        except InputError as exc:
            await self._finish(job_id, attempt, "failed", [exc.to_dict()], {"rows_done": 0})
            return
        progress: dict[str, Any] = dict(job["summary"] or {})
        kept = int(job["kept_errors"] or 0)
        if not progress.get("parsed"):
            kept = await self._start(job_id, attempt, rows, progress)
        done = int(progress.get("rows_done", 0))
        chunk = self.settings.batch_chunk_rows
        frames = (rows.frame.iloc[start : start + chunk] for start in range(done, len(rows.frame), chunk))
        deps = current()

        async def write(scored: Scored) -> ScoringResult:
            nonlocal kept
            async with self.pool.connection() as conn, conn.transaction():
                result = await write_scores(conn, scored, source="batch", batch_job_id=job_id, policy=deps.policy)
                room = max(0, MAX_ERRORS - kept)
                new_errors = [e.to_dict() for e in result.errors[:room]]
                _accumulate(progress, result, scored.rows_total)
                await self._fence(
                    conn,
                    job_id,
                    attempt,
                    "rows_ok = rows_ok + %s, rows_failed = rows_failed + %s, "
                    "errors = errors || %s, summary = summary || %s",
                    (result.rows_ok, result.rows_failed, Jsonb(new_errors), Jsonb(progress)),
                )
                kept += len(new_errors)
            return result

        async for part in score_chunks(frames, write, deps):
            started = await auto_start(self.runtime, part.auto_start)
            progress["auto_started"] = progress.get("auto_started", 0) + len(started)
        await self._finish(job_id, attempt, "completed", None, progress)

    async def _start(self, job_id: str, attempt: int, rows: CsvRows, progress: dict[str, Any]) -> int:
        """Record the job's size and its malformed lines, once; returns the errors kept."""
        errors = [e.to_dict() for e in rows.errors[:MAX_ERRORS]]
        progress.update(parsed=True, rows_done=0)
        async with self.pool.connection() as conn, conn.transaction():
            await self._fence(
                conn,
                job_id,
                attempt,
                "rows_total = %s, rows_ok = 0, rows_failed = %s, errors = %s, summary = summary || %s",
                (len(rows.frame) + len(rows.errors), rows_with_errors(rows.errors), Jsonb(errors), Jsonb(progress)),
            )
        return len(errors)

    # -- events ---------------------------------------------------------------------------------------------

    async def flush_events_once(self, *, force: bool = False) -> bool:
        """Score the waiting events when enough wait or the oldest is old enough (or ``force``); False when
        nothing was due."""
        deps = _require_model()
        limit, age = self.settings.events_flush_rows, self.settings.events_flush_seconds
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT event_id, payload, extract(epoch FROM now() - received_at) AS waited FROM order_events "
                "WHERE processed_at IS NULL ORDER BY event_id LIMIT %s FOR UPDATE SKIP LOCKED",
                (limit,),
            )
            events = await cur.fetchall()
            if not events or not (force or len(events) >= limit or max(float(e["waited"]) for e in events) >= age):
                return False
            ids = [int(e["event_id"]) for e in events]
            tick = time.perf_counter()
            cur = await conn.execute(
                "INSERT INTO batch_jobs (batch_job_id, source, status, rows_total, created_by, started_at) "
                "VALUES (gen_random_uuid(), 'stream', 'processing', %s, 'system:events', now()) "
                "RETURNING batch_job_id::text AS id",
                (len(ids),),
            )
            job = await cur.fetchone()
            assert job is not None
            try:
                result = await score_records(
                    [e["payload"] for e in events],
                    lines=ids,
                    source="stream",
                    batch_job_id=job["id"],
                    conn=conn,
                    deps=deps,
                )
                status, errors = "completed", [e.to_dict() for e in result.errors[:MAX_ERRORS]]
            except InputError as exc:  # the micro-batch as a whole is unusable: say why, keep the events
                result, status, errors = (
                    ScoringResult(rows_total=len(ids), rows_failed=len(ids)),
                    "failed",
                    [exc.to_dict()],
                )
            summary = {**result.summary(), "events": [ids[0], ids[-1]], "seconds": round(time.perf_counter() - tick, 3)}
            await conn.execute(
                "UPDATE batch_jobs SET status = %s, rows_ok = %s, rows_failed = %s, errors = %s, summary = %s, "
                "finished_at = now(), updated_at = now() WHERE batch_job_id = %s",
                (status, result.rows_ok, result.rows_failed, Jsonb(errors), Jsonb(summary), job["id"]),
            )
            await conn.execute(
                "UPDATE order_events SET processed_at = now(), batch_job_id = %s WHERE event_id = ANY(%s)",
                (job["id"], ids),
            )
        log.info(
            "events scored", extra={"events": len(ids), "batch_job_id": job["id"], "rows_failed": result.rows_failed}
        )
        await auto_start(self.runtime, result.auto_start)
        return True


def _require_model() -> ToolDeps:
    deps = current()
    if "delay" not in deps.models:
        raise ScoringUnavailable("the delay model is not loaded; batch jobs and events wait until one is")
    return deps


def _accumulate(progress: dict[str, Any], result: ScoringResult, rows: int) -> None:
    """Add a chunk's counts to a job's running summary (kept in ``batch_jobs.summary``)."""
    progress["rows_done"] = int(progress.get("rows_done", 0)) + rows
    counts = progress.setdefault("deviations", {})
    for level, ids in result.deviations.items():
        counts[level] = counts.get(level, 0) + len(ids)
    progress["superseded"] = progress.get("superseded", 0) + result.superseded
    progress["dismissed"] = progress.get("dismissed", 0) + result.dismissed
    progress["warehouse_clusters"] = sorted(set(progress.get("warehouse_clusters", [])) | set(result.clusters))
    progress["model_version"] = result.model_version
    progress["anomaly_model_version"] = result.anomaly_model_version
