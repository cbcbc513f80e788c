"""Crons (LangGraph's cron API): runs started on a schedule, on a thread or each on a new thread.

``POST /runs/crons`` makes a stateless cron (every firing runs on a new thread, deleted after the run unless
``on_run_completed`` is ``keep``); ``POST /threads/{thread_id}/runs/crons`` one that runs on that thread.
The body is a run's (as ``POST /threads/{id}/runs`` takes it, checked against the assistant's graph now, so a
cron that could not start its run is refused at once) plus ``schedule``, ``timezone``, ``end_time`` and
``enabled``. A cron starts its runs as the key that created it, so making, changing and deleting crons needs
the operator role, and changing or deleting one needs at least the role it runs as. The scheduler is
:mod:`server.runtime.crons`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from server.auth import Operator, Principal, Viewer
from server.errors import ApiError, field_name
from server.openapi import errors
from server.runtime import crons, store
from server.runtime.crons import SCHEDULE_PATTERN, SCHEDULE_RULE, TIMEZONES, check_schedule, check_timezone
from server.runtime.deps import RuntimeDep
from server.runtime.events import StreamMode
from server.runtime.schemas import (
    AssistantId,
    JsonBool,
    Limit,
    NodeNames,
    Offset,
    RunConfig,
    RunCreate,
    ThreadId,
    ThreadIdPath,
)
from server.settings import Role

router = APIRouter(tags=["crons"])

CronIdPath = Annotated[uuid.UUID, Path(description="The cron id (a UUID).")]
CronSortBy = Literal["cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"]
CronField = Literal[
    "cron_id", "assistant_id", "thread_id", "on_run_completed", "end_time", "schedule", "timezone", "created_at",
    "updated_at", "payload", "user_id", "next_run_date", "metadata", "enabled", "now", "last_run_id", "last_run_at",
    "last_error",
]  # fmt: skip
_NOT_TAKEN = "Not taken by crons (each firing starts a run from input); leave it unset."
_SCHEDULE_DOC = f"When runs start: {SCHEDULE_RULE}."
_TIMEZONE_DOC = "The IANA time zone the schedule is read in (e.g. 'Europe/Paris'); null: UTC."


def _date_time_text(value: Any) -> Any:
    """An ISO 8601 string (or null), not a number pydantic would read as seconds since 1970."""
    if value is not None and not isinstance(value, str | dt.datetime):
        raise PydanticCustomError("datetime_type", "must be an ISO 8601 date-time such as 2026-10-31T00:00:00Z")
    return value


EndTime = Annotated[dt.datetime | None, BeforeValidator(_date_time_text)]
_END_TIME_DOC = "No firing after this time (ISO 8601; without an offset: UTC); null: none."
_SCHEDULE_SCHEMA = {"type": "string", "maxLength": 200, "pattern": SCHEDULE_PATTERN, "description": _SCHEDULE_DOC}
_TIMEZONE_SCHEMA = {"anyOf": [{"type": "string", "enum": list(TIMEZONES)}, {"type": "null"}],
                    "description": _TIMEZONE_DOC}  # fmt: skip
_STRATEGIES = ["reject", "enqueue", "interrupt", "rollback"]


def _no_default(schema: dict[str, Any]) -> None:
    """A field that may be left out but not sent null: its document shows no null default."""
    schema.pop("default", None)


_KEEP = Field(None, json_schema_extra=_no_default)  # left out: the cron's value is kept


def _schedule(value: str | None) -> str | None:
    return check_schedule(value) if value is not None else None


def _timezone(value: str | None) -> str | None:
    return check_timezone(value) if value is not None else None


class CronCreate(RunCreate):
    """The body of ``POST /runs/crons`` and ``POST /threads/{thread_id}/runs/crons``: the run each firing starts
    (as ``POST /threads/{id}/runs`` takes it) and when it fires."""

    schedule: Annotated[str, WithJsonSchema(_SCHEDULE_SCHEMA)] = Field(max_length=200)
    timezone: Annotated[str | None, WithJsonSchema(_TIMEZONE_SCHEMA)] = None
    end_time: EndTime = Field(None, description=_END_TIME_DOC)
    enabled: JsonBool = Field(True, description="false: the cron is kept but does not fire.")
    on_run_completed: Literal["delete", "keep"] = Field(
        "delete", description="A stateless cron's thread after each run: delete (default) or keep. Ignored for a "
        "thread's cron.",
    )  # fmt: skip
    command: None = Field(None, description=_NOT_TAKEN)
    checkpoint_id: None = Field(None, description=_NOT_TAKEN)
    checkpoint: None = Field(None, description=_NOT_TAKEN)
    if_not_exists: None = Field(  # type: ignore[assignment]
        None, description="Not taken by crons: a thread's cron needs the thread, a stateless cron makes a new one "
        "each firing.",
    )  # fmt: skip
    on_disconnect: None = Field(None, description=_NOT_TAKEN)
    after_seconds: None = Field(None, description="Not taken by crons: the schedule says when.")

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        return check_schedule(value)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        return _timezone(value)

    @field_validator("end_time")
    @classmethod
    def _check_end_time(cls, value: dt.datetime | None) -> dt.datetime | None:
        return crons.as_utc(value)


class CronPatch(BaseModel):
    """The body of ``PATCH /runs/crons/{cron_id}``: the fields to change (the others are kept). ``end_time``
    null clears it, ``timezone`` null goes back to UTC, a run field null goes back to its default."""

    model_config = ConfigDict(extra="ignore")

    schedule: Annotated[str | None, WithJsonSchema(_SCHEDULE_SCHEMA)] = Field(
        None, max_length=200, json_schema_extra=_no_default
    )
    timezone: Annotated[str | None, WithJsonSchema(_TIMEZONE_SCHEMA)] = None
    end_time: EndTime = Field(
        None, description="No firing after this time (ISO 8601; without an offset: UTC); null clears it."
    )
    enabled: Annotated[
        JsonBool | None,
        WithJsonSchema({"type": "boolean", "description": "false: stop firing; true: fire again from the next slot."}),
    ] = _KEEP
    on_run_completed: Annotated[Literal["delete", "keep"] | None, WithJsonSchema({"enum": ["delete", "keep"]})] = _KEEP
    input: Any = None
    metadata: dict[str, Any] | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = Field(None, max_length=2000)
    interrupt_before: NodeNames = None
    interrupt_after: NodeNames = None
    multitask_strategy: Annotated[
        Literal["reject", "enqueue", "interrupt", "rollback"] | None, WithJsonSchema({"enum": _STRATEGIES})
    ] = _KEEP
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: JsonBool | None = None
    stream_resumable: JsonBool | None = None
    durability: Literal["sync", "async", "exit"] | None = None

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str | None) -> str | None:
        return _schedule(value)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        return _timezone(value)

    @field_validator("schedule", "enabled", "on_run_completed", "multitask_strategy", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null; leave it out to keep the cron's value")
        return value


class CronSearch(BaseModel):
    """The body of ``POST /runs/crons/search``."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: AssistantId | None = None
    thread_id: ThreadId | None = None
    enabled: JsonBool | None = None
    metadata: dict[str, Any] | None = Field(None, description="Crons whose metadata contains these pairs.")
    limit: Limit = 10
    offset: Offset = 0
    sort_by: CronSortBy = "created_at"
    sort_order: Literal["asc", "desc"] | None = Field(
        None, description="Default: desc for created_at and updated_at, asc for the others."
    )
    select: list[CronField] | None = Field(None, max_length=20, description="Only these fields of each cron.")


class CronCount(BaseModel):
    """The body of ``POST /runs/crons/count``."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: AssistantId | None = None
    thread_id: ThreadId | None = None
    enabled: JsonBool | None = None
    metadata: dict[str, Any] | None = None


def _may_change(principal: Principal, row: store.Row) -> None:
    """A cron runs as its creator's role: changing or deleting it needs at least that role."""
    role: Role = row["created_role"]
    if not principal.has(role):
        raise ApiError(403, "forbidden", f"this cron starts its runs as {row['created_by']} ({role}); changing or "
                       f"deleting it needs the {role} role; your key has {principal.role}")  # fmt: skip


def _invalid(exc: ValidationError) -> ApiError:
    """A 422 naming each field, as request validation answers."""
    problems = [{"field": field_name(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return ApiError(422, "validation_error", f"invalid request: {summary}", problems)


async def _create(runtime: RuntimeDep, body: CronCreate, principal: Principal, thread_id: str | None) -> dict[str, Any]:
    await runtime.manager.admit(body, thread_id)  # refused now, not when it fires
    crons.check_comes_due(body.schedule)
    row = await crons.insert_cron(
        runtime.pool, thread_id=thread_id, body=body, schedule=body.schedule, timezone=body.timezone,
        end_time=body.end_time, enabled=body.enabled, on_run_completed=body.on_run_completed, principal=principal,
    )  # fmt: skip
    return crons.cron_json(row)


@router.post("/runs/crons", summary="Create a cron whose runs each get a new thread", responses=errors(404, 409))
async def create_cron(body: CronCreate, runtime: RuntimeDep, principal: Operator) -> dict[str, Any]:
    """Each firing starts the run on a new thread, deleted after the run unless ``on_run_completed`` is
    ``keep``. An unknown ``assistant_id`` is a 404; a body the assistant's graph would refuse is a 422 now."""
    return await _create(runtime, body, principal, None)


@router.post("/threads/{thread_id}/runs/crons", summary="Create a cron that runs on a thread", responses=errors(409))
async def create_thread_cron(
    thread_id: ThreadIdPath, body: CronCreate, runtime: RuntimeDep, principal: Operator
) -> dict[str, Any]:
    """Each firing starts the run on the thread (which must exist; the cron goes with it), applying its
    ``multitask_strategy`` (default ``enqueue``) to a run still in flight there."""
    await store.fetch_thread(runtime.pool, thread_id)
    return await _create(runtime, body, principal, thread_id)


@router.patch("/runs/crons/{cron_id:uuid}", summary="Change a cron", responses=errors(409))
async def update_cron(cron_id: CronIdPath, body: CronPatch, runtime: RuntimeDep, principal: Operator) -> dict[str, Any]:
    """The fields given replace the cron's; the whole cron is checked again as at creation, and its next firing
    planned again from now. Needs at least the role the cron runs as."""
    async with runtime.pool.connection() as conn, conn.transaction():
        row = await crons.lock_cron(conn, str(cron_id))
        _may_change(principal, row)
        current = {**row["payload"], "metadata": row["metadata"], "schedule": row["schedule"],
                   "timezone": row["timezone"], "end_time": row["end_time"], "enabled": row["enabled"],
                   "on_run_completed": row["on_run_completed"] or "delete"}  # fmt: skip
        merged = {**current, **body.model_dump(exclude_unset=True)}
        try:
            cron = CronCreate.model_validate({k: v for k, v in merged.items() if v is not None})
        except ValidationError as exc:
            raise _invalid(exc) from None
        await runtime.manager.admit(cron, row["thread_id"], stored=True)
        crons.check_comes_due(cron.schedule)
        updated = await crons.update_cron(
            conn, str(cron_id), body=cron, schedule=cron.schedule, timezone=cron.timezone, end_time=cron.end_time,
            enabled=cron.enabled, on_run_completed=cron.on_run_completed, stateless=row["thread_id"] is None,
        )  # fmt: skip
    return crons.cron_json(updated)


@router.delete("/runs/crons/{cron_id:uuid}", status_code=204, summary="Delete a cron")
async def delete_cron(cron_id: CronIdPath, runtime: RuntimeDep, principal: Operator) -> Response:
    """It fires no more (runs it started go on). Needs at least the role the cron runs as."""
    _may_change(principal, await crons.get_cron(runtime.pool, str(cron_id)))
    await crons.delete_cron(runtime.pool, str(cron_id))
    return Response(status_code=204)


@router.post("/runs/crons/search", summary="Search crons")
async def search_crons(body: CronSearch, runtime: RuntimeDep, _: Viewer) -> list[dict[str, Any]]:
    """Crons by assistant, thread, enabled and metadata (containment), sorted and paged; newest first by
    default. Each is LangGraph's ``Cron`` plus what its last firing did (``last_run_id``, ``last_run_at``,
    ``last_error``)."""
    rows = await crons.search_crons(
        runtime.pool, assistant_id=body.assistant_id, thread_id=body.thread_id, enabled=body.enabled,
        metadata=body.metadata, limit=body.limit, offset=body.offset, sort_by=body.sort_by,
        sort_order=body.sort_order,
    )  # fmt: skip
    return [crons.cron_json(row, body.select) for row in rows]


@router.post("/runs/crons/count", summary="Count crons")
async def count_crons(body: CronCount, runtime: RuntimeDep, _: Viewer) -> int:
    """How many crons match (the filters of ``POST /runs/crons/search``)."""
    return await crons.count_crons(runtime.pool, assistant_id=body.assistant_id, thread_id=body.thread_id,
                                   enabled=body.enabled, metadata=body.metadata)  # fmt: skip
