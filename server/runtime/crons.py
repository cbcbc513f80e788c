"""Crons: runs started on a schedule (LangGraph's cron API), kept in the ``crons`` table (migration 0014).

A cron is a schedule (a 5-field cron expression, evaluated in UTC unless the cron names a ``timezone``) and a
run body (``payload``, validated as :class:`~server.runtime.schemas.RunCreate`, and checked against the
assistant's graph when the cron is created or changed, so a cron that could not start its run is refused then,
not when it fires). A cron with a thread runs on it; one without (a "stateless" cron) starts each run on a new
thread, deleted after the run unless ``on_run_completed`` is ``keep``. Each run starts as the key that created
the cron (its name and role are recorded), with ``cron_id`` in its metadata, behind the runs people wait on
(priority -1).

:class:`CronScheduler` runs in every server process. Every ``RIMAS_CRON_POLL_SECONDS`` it fires the crons that
are due: the run is queued through :meth:`RunManager.start <server.runtime.manager.RunManager.start>` and, in
the same transaction, the cron's row is claimed (``FOR UPDATE SKIP LOCKED``, and only while it is still due
for the same slot) and its ``next_run_date`` advanced to the first occurrence after now. A process that finds
the row taken or already advanced rolls its run back, so each firing starts exactly one run whatever the number
of processes. Slots missed while no server ran fire once, not once each. A cron whose ``end_time`` has passed is
disabled without firing; one whose next occurrence falls after its ``end_time`` is disabled after its last
firing. A firing whose run is refused (its assistant was deleted, its thread waits for an approval...) records
the reason in ``last_error``, is logged, and the cron goes on with its next slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterBadDateError, croniter
from psycopg import AsyncConnection, errors, sql
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from server.auth import Principal
from server.errors import ApiError
from server.runtime import store
from server.runtime.manager import RunManager
from server.runtime.schemas import RunCreate
from server.runtime.serde import to_jsonable
from server.settings import Role

log = logging.getLogger(__name__)

SCHEDULE_RULE = (
    "a 5-field cron expression 'minute hour day-of-month month day-of-week' (minute 0-59, hour 0-23, day 1-31, "
    "month 1-12 or jan-dec, weekday 0-7 or sun-sat, 0 and 7 = Sunday; each field *, a value, a range a-b, either "
    "with a step /n, or a comma list of those) that comes due, evaluated in UTC unless timezone is set; e.g. "
    "'0 9 * * 1-5'"
)


def _names(*names: str) -> str:
    return "|".join(form for name in names for form in (name, name.title(), name.upper()))


def _field(value: str) -> str:
    item = rf"(?:\*|(?:{value})(?:-(?:{value}))?)(?:/[1-9][0-9]?)?"
    return rf"(?:{item}(?:,{item})*)"


_MONTHS = _names("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = _names("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS = (
    _field("[0-5]?[0-9]"),
    _field("[01]?[0-9]|2[0-3]"),
    _field("0?[1-9]|[12][0-9]|3[01]"),
    _field("0?[1-9]|1[0-2]|" + _MONTHS),
    _field("[0-7]|" + _DAYS),
)
#: What a schedule may look like, as the API document states it (a JSON-schema regex; spaces or tabs between).
SCHEDULE_PATTERN = r"^[ \t]*" + r"[ \t]+".join(_FIELDS) + r"[ \t]*$"
_SCHEDULE = re.compile(SCHEDULE_PATTERN)
#: The time zones a cron may name (IANA names known to this Python).
TIMEZONES = tuple(sorted(available_timezones() | {"UTC"}))
_OLDEST, _LATEST = dt.datetime(2, 1, 1, tzinfo=dt.UTC), dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
SORTABLE = ("cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at")
BATCH = 100  # due crons fired per look (more wait for the next look, which then comes at once)


# -- schedules ------------------------------------------------------------------------------------------------


def check_schedule(schedule: str) -> str:
    """The expression with single spaces, or ValueError saying what is allowed."""
    if not _SCHEDULE.fullmatch(schedule):
        raise ValueError(f"{schedule!r} is not {SCHEDULE_RULE}")
    normal = " ".join(schedule.split())
    try:
        croniter(normal)
    except Exception as exc:  # croniter's errors are ValueErrors, KeyErrors... depending on the field
        raise ValueError(f"{schedule!r} is not valid ({exc}); use {SCHEDULE_RULE}") from None
    return normal


def check_comes_due(schedule: str) -> None:
    """422 for a schedule that names no date that exists (30 February): it would never fire. (Checked apart from
    its form, once the cron's assistant is known to exist, so an unknown assistant is a 404 first.)"""
    try:
        croniter(schedule, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).get_next(dt.datetime)
    except CroniterBadDateError:
        raise ApiError(422, "validation_error", f"schedule: {schedule!r} never comes due (no such date, e.g. 30 "
                       f"February); use {SCHEDULE_RULE}") from None  # fmt: skip


def check_timezone(name: str) -> str:
    """An IANA time zone name, or ValueError."""
    if name not in TIMEZONES:
        raise ValueError(f"{name!r} is not an IANA time zone name (e.g. 'UTC', 'Europe/Paris', 'America/New_York')")
    return name


def next_occurrence(schedule: str, timezone: str | None, after: dt.datetime) -> dt.datetime:
    """The first time after ``after`` that ``schedule`` names, in UTC (the schedule read in ``timezone``)."""
    zone: dt.tzinfo = ZoneInfo(timezone) if timezone else dt.UTC
    found = croniter(schedule, after.astimezone(zone)).get_next(dt.datetime)
    return cast(dt.datetime, found).astimezone(dt.UTC)


def plan(
    schedule: str, timezone: str | None, enabled: bool, end_time: dt.datetime | None, now: dt.datetime
) -> tuple[bool, dt.datetime | None]:
    """Whether the cron stays enabled, and its next firing (None when it will not fire again: disabled, past its
    ``end_time``, or its next occurrence after it)."""
    if not enabled or (end_time is not None and end_time <= now):
        return False, None
    upcoming = next_occurrence(schedule, timezone, now)
    if end_time is not None and upcoming > end_time:
        return False, None
    return True, upcoming


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """In UTC (a datetime without an offset is read as UTC), kept within years 2-9000: a time before is as
    past as any, one after as far as any."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        value = value.astimezone(dt.UTC)
    except OverflowError:
        return _OLDEST if value.year < 2 else _LATEST
    return min(max(value, _OLDEST), _LATEST)


# -- checking a cron's run ------------------------------------------------------------------------------------


def payload_of(body: RunCreate) -> dict[str, Any]:
    """The run part of a cron body as stored (what was given, as JSON; the cron's own fields left out)."""
    own = set(type(body).model_fields) - set(RunCreate.model_fields)
    payload = body.model_dump(mode="json", exclude_unset=True, exclude=own)
    return {"assistant_id": body.assistant_id, **payload}


def run_body(row: store.Row) -> RunCreate:
    """The run a firing of the cron ``row`` starts: its payload with ``cron_id`` in the metadata."""
    payload = dict(row["payload"])
    payload["metadata"] = {**(payload.get("metadata") or {}), "cron_id": str(row["cron_id"])}
    if row["thread_id"] is None:
        payload["if_not_exists"] = "create"
    return RunCreate.model_validate(payload)


# -- SQL ------------------------------------------------------------------------------------------------------


def cron_json(row: Mapping[str, Any], select: Sequence[str] | None = None) -> dict[str, Any]:
    """A LangGraph ``Cron`` (and what its last firing did); only the ``select`` keys when given."""

    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    cron = {
        "cron_id": str(row["cron_id"]),
        "assistant_id": row["assistant_id"],
        "thread_id": row["thread_id"],
        "on_run_completed": row["on_run_completed"],
        "end_time": iso(row["end_time"]),
        "schedule": row["schedule"],
        "timezone": row["timezone"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "payload": row["payload"],
        "user_id": row["created_by"],
        "next_run_date": iso(row["next_run_date"]),
        "metadata": row["metadata"],
        "enabled": row["enabled"],
        "last_run_id": str(row["last_run_id"]) if row["last_run_id"] else None,
        "last_run_at": iso(row["last_run_at"]),
        "last_error": row["last_error"],
    }
    return {k: v for k, v in cron.items() if k in select} if select else cron


def not_found(cron_id: str) -> ApiError:
    return ApiError(404, "not_found", f"cron {cron_id} not found")


async def insert_cron(
    pool: store.Pool, *, thread_id: str | None, body: RunCreate, schedule: str, timezone: str | None,
    end_time: dt.datetime | None, enabled: bool, on_run_completed: str | None, principal: Principal,
) -> store.Row:  # fmt: skip
    """Record a new cron (a thread cron's thread must exist: 404)."""
    enabled, next_run = plan(schedule, timezone, enabled, end_time, dt.datetime.now(dt.UTC))
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO crons (cron_id, assistant_id, thread_id, schedule, timezone, payload, metadata, "
                "on_run_completed, enabled, end_time, next_run_date, created_by, created_role) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (str(uuid.uuid4()), body.assistant_id, thread_id, schedule, timezone,
                 Jsonb(to_jsonable(payload_of(body))), Jsonb(to_jsonable(body.metadata or {})),
                 on_run_completed if thread_id is None else None, enabled, end_time, next_run, principal.id,
                 principal.role),
            )  # fmt: skip
            row = await cur.fetchone()
    except errors.ForeignKeyViolation:  # the thread was deleted meanwhile
        raise ApiError(404, "not_found", f"thread {thread_id} not found") from None
    assert row is not None
    return dict(row)


async def get_cron(pool: store.Pool, cron_id: str) -> store.Row:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM crons WHERE cron_id = %s", (cron_id,))
        row = await cur.fetchone()
    if row is None:
        raise not_found(cron_id)
    return dict(row)


async def lock_cron(conn: AsyncConnection[Any], cron_id: str) -> store.Row:
    """The cron's row, locked for this transaction (404 if there is none)."""
    cur = await conn.execute("SELECT * FROM crons WHERE cron_id = %s FOR UPDATE", (cron_id,))
    row = await cur.fetchone()
    if row is None:
        raise not_found(cron_id)
    return dict(row)


async def update_cron(
    conn: AsyncConnection[Any], cron_id: str, *, body: RunCreate, schedule: str, timezone: str | None,
    end_time: dt.datetime | None, enabled: bool, on_run_completed: str | None, stateless: bool,
) -> store.Row:  # fmt: skip
    """Replace a (locked) cron's schedule and run; its next firing is planned again from now."""
    enabled, next_run = plan(schedule, timezone, enabled, end_time, dt.datetime.now(dt.UTC))
    cur = await conn.execute(
        "UPDATE crons SET assistant_id = %s, schedule = %s, timezone = %s, payload = %s, metadata = %s, "
        "on_run_completed = %s, enabled = %s, end_time = %s, next_run_date = %s, updated_at = now() "
        "WHERE cron_id = %s RETURNING *",
        (body.assistant_id, schedule, timezone, Jsonb(to_jsonable(payload_of(body))),
         Jsonb(to_jsonable(body.metadata or {})), on_run_completed if stateless else None, enabled, end_time,
         next_run, cron_id),
    )  # fmt: skip
    row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def delete_cron(pool: store.Pool, cron_id: str) -> None:
    async with pool.connection() as conn:
        cur = await conn.execute("DELETE FROM crons WHERE cron_id = %s RETURNING cron_id", (cron_id,))
        if await cur.fetchone() is None:
            raise not_found(cron_id)


def _filters(
    assistant_id: str | None, thread_id: str | None, enabled: bool | None, metadata: Mapping[str, Any] | None
) -> tuple[sql.Composable, list[Any]]:
    return store.where((sql.SQL("assistant_id = %s"), assistant_id), (sql.SQL("thread_id = %s"), thread_id),
                       (sql.SQL("enabled = %s"), enabled), store.metadata_contains(metadata))  # fmt: skip


async def search_crons(
    pool: store.Pool, *, assistant_id: str | None = None, thread_id: str | None = None, enabled: bool | None = None,
    metadata: Mapping[str, Any] | None = None, limit: int = 10, offset: int = 0, sort_by: str = "created_at",
    sort_order: str | None = None,
) -> list[store.Row]:  # fmt: skip
    """One page of the matching crons; newest first by default (dates descending, ids ascending unless told)."""
    key = sort_by if sort_by in SORTABLE else "created_at"
    order = sort_order or ("desc" if key in ("created_at", "updated_at") else "asc")
    where, params = _filters(assistant_id, thread_id, enabled, metadata)
    query = sql.SQL("SELECT * FROM crons{} ORDER BY {} {} NULLS LAST, cron_id LIMIT %s OFFSET %s").format(
        where, sql.Identifier(key), sql.SQL("DESC") if order == "desc" else sql.SQL("ASC")
    )
    async with pool.connection() as conn:
        cur = await conn.execute(query, [*params, limit, offset])
        return [dict(r) for r in await cur.fetchall()]


async def count_crons(
    pool: store.Pool, *, assistant_id: str | None = None, thread_id: str | None = None, enabled: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> int:  # fmt: skip
    where, params = _filters(assistant_id, thread_id, enabled, metadata)
    async with pool.connection() as conn:
        cur = await conn.execute(sql.SQL("SELECT count(*) AS n FROM crons{}").format(where), params)
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def due_crons(pool: store.Pool, limit: int = BATCH) -> list[store.Row]:
    """Enabled crons whose next firing has come, the longest-waiting first (not locked: firing claims each),
    each with the database's ``now``."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT *, now() AS db_now FROM crons WHERE enabled AND next_run_date <= now() "
            "ORDER BY next_run_date, cron_id LIMIT %s",
            (limit,),
        )
        return [dict(r) for r in await cur.fetchall()]


_CLAIM = (
    "SELECT cron_id FROM crons WHERE cron_id = %s AND enabled AND next_run_date = %s AND next_run_date <= now() "
    "FOR UPDATE SKIP LOCKED"
)


async def _advance(
    pool: store.Pool, row: store.Row, enabled: bool, next_run: dt.datetime | None, error: str | None
) -> bool:
    """A firing that started no run: the cron goes on to its next slot (``error`` says why no run started; None:
    it had ended), unless another process dealt with this slot meanwhile. Whether this call did it."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE crons SET enabled = %s, next_run_date = %s, "
            "last_run_at = CASE WHEN %s THEN now() ELSE last_run_at END, "
            "last_error = coalesce(%s, last_error), updated_at = CASE WHEN %s THEN updated_at ELSE now() END "
            "WHERE cron_id = %s AND enabled AND next_run_date = %s RETURNING cron_id",
            (enabled, next_run, error is not None, error[:2000] if error else None, error is not None,
             row["cron_id"], row["next_run_date"]),
        )  # fmt: skip
        return await cur.fetchone() is not None


class _Taken(Exception):
    """Another process fired this slot (or the cron is being changed): this run is rolled back."""


# -- the scheduler --------------------------------------------------------------------------------------------


class CronScheduler:
    """Fires due crons every ``RIMAS_CRON_POLL_SECONDS`` in this process (any number of processes may)."""

    def __init__(self, manager: RunManager) -> None:
        self.manager = manager
        self.pool = manager.pool
        self.settings = manager.settings
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="cron-scheduler")

    async def close(self) -> None:
        """Stop looking for due crons (a firing under way is cancelled, its transaction rolled back)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while not self._closing:
            handled = 0
            try:
                handled = await self.tick()
            except Exception:
                log.exception("looking for due crons failed")
            if handled < BATCH:  # a full batch: more may be due, look again at once
                await asyncio.sleep(self.settings.cron_poll_seconds)

    async def tick(self) -> int:
        """One look: fire each due cron (at most :data:`BATCH`); returns how many this process dealt with (fired,
        refused or ended; not those another process took)."""
        handled = 0
        for row in await due_crons(self.pool):
            if self._closing:
                break
            outcome, _ = await self._fire(row)
            handled += outcome != "taken"
        return handled

    async def fire(self, row: store.Row) -> str | None:
        """Fire a due cron (a row of :func:`due_crons`): the id of the run it started, or None when another
        process fired this slot, the cron had ended, or its run was refused (then in its ``last_error``)."""
        return (await self._fire(row))[1]

    async def _fire(self, row: store.Row) -> tuple[str, str | None]:
        """Start the run of a due cron and advance the cron to its next slot, in one transaction."""
        cron_id = str(row["cron_id"])
        now: dt.datetime = row.get("db_now") or dt.datetime.now(dt.UTC)
        if row["end_time"] is not None and row["end_time"] <= now:
            if not await _advance(self.pool, row, False, None, None):
                return "taken", None
            log.info("cron disabled: its end_time has passed", extra={"cron_id": cron_id})
            return "ended", None
        try:
            enabled, next_run = plan(row["schedule"], row["timezone"], True, row["end_time"], now)
        except Exception as exc:  # a schedule this croniter no longer reads: it cannot fire again
            log.exception("cron disabled: its schedule cannot be evaluated", extra={"cron_id": cron_id})
            await _advance(self.pool, row, False, None, f"schedule {row['schedule']!r}: {exc}")
            return "refused", None
        thread_id = row["thread_id"] or str(uuid.uuid4())

        async def claim(conn: AsyncConnection[Any]) -> None:
            cur = await conn.execute(_CLAIM, (cron_id, row["next_run_date"]))
            if await cur.fetchone() is None:
                raise _Taken
            await conn.execute(
                "UPDATE crons SET enabled = %s, next_run_date = %s, last_run_at = now(), last_error = NULL, "
                "last_run_id = (SELECT run_id FROM runs WHERE thread_id = %s AND created_at = now() "
                "AND metadata ->> 'cron_id' = %s ORDER BY run_id LIMIT 1) WHERE cron_id = %s",
                (enabled, next_run, thread_id, cron_id, cron_id),
            )

        try:
            body = run_body(row)
            principal = Principal(id=row["created_by"], role=cast(Role, row["created_role"]))
            run = await self.manager.start(
                thread_id, body, principal, "background", within=claim, priority=-1,
                on_completion=(row["on_run_completed"] or "delete") if row["thread_id"] is None else "keep",
            )  # fmt: skip
        except _Taken:
            log.debug("cron slot fired elsewhere", extra={"cron_id": cron_id})
            return "taken", None
        except ApiError as exc:
            if exc.status == 503:  # this process is shutting down: the slot stays due for another one
                return "taken", None
            return await self._refused(row, enabled, next_run, f"{exc.status} {exc.code}: {exc.message}")
        except ValidationError as exc:  # a payload stored by an older version that this one refuses
            return await self._refused(row, enabled, next_run, f"payload: {exc.errors()[0]['msg']}")
        log.info("cron fired", extra={"cron_id": cron_id, "run_id": run.run_id, "thread_id": thread_id,
                                      "next_run_date": next_run.isoformat() if next_run else None})  # fmt: skip
        if not enabled:
            log.info("cron disabled: no firing before its end_time", extra={"cron_id": cron_id})
        return "fired", run.run_id

    async def _refused(
        self, row: store.Row, enabled: bool, next_run: dt.datetime | None, error: str
    ) -> tuple[str, str | None]:
        if not await _advance(self.pool, row, enabled, next_run, error):
            return "taken", None
        log.warning("cron firing started no run", extra={"cron_id": str(row["cron_id"]), "error": error})
        return "refused", None
