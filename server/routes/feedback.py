"""Feedback on answers: thumbs, ratings, corrections and preference pairs, their stats, and a JSONL export.

``POST /feedback`` rates the answer of a thread's checkpoint (the latest, the latest of a run named, or one named)
with exactly one of ``thumbs``, ``rating`` or ``correction``; ``POST /feedback/preference-pair`` stores a chosen /
rejected pair for a checkpoint. Both copy the prompt and the context of the answer from the checkpoint's state
(:func:`tools.feedback.snapshot_of`), record the rater's key name, and accept an ``idempotency_key`` (a retry
answers the row already written, 200). Writing needs the operator role; ``GET /feedback/stats``, viewer;
``GET /feedback/export`` (conversation text), admin.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse
from langgraph.types import StateSnapshot
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from rag.schemas import JSON_INTEGER, NON_BLANK
from server.auth import Admin, Operator, Principal, Viewer
from server.errors import ApiError
from server.openapi import ErrorEnvelope, errors
from server.routes.deviations import Instant
from server.runtime import store
from server.runtime.core import Runtime
from server.runtime.deps import RuntimeDep
from server.runtime.schemas import ID_PATTERN, UUID_PATTERN, CheckpointId, ThreadId
from server.runtime.serde import to_jsonable
from tools import feedback as db

log = logging.getLogger(__name__)

router = APIRouter(tags=["feedback"])

NDJSON = "application/x-ndjson"
MAX_NOTE = 4000
MAX_PAIR_TEXT = 20_000
ONE_OF = ("thumbs", "rating", "correction")

RunId = Annotated[str, Field(pattern=UUID_PATTERN, description="A run of the thread (a lowercase UUID).")]
IdempotencyKey = Annotated[str, Field(pattern=ID_PATTERN, description="A client key: a retry with it answers the "
                                      "feedback already written (1-128 letters, digits and . _ : -).")]  # fmt: skip
Note = Annotated[str, Field(max_length=MAX_NOTE)]
SinceQuery = Annotated[
    Instant | None, Query(description="Only feedback written at or after this time (RFC 3339, with its offset).")
]
Thumbs = Annotated[Literal[-1, 1], JSON_INTEGER]
Rating = Annotated[int, Field(ge=1, le=5), JSON_INTEGER]
Correction = Annotated[str, Field(min_length=1, max_length=MAX_NOTE, pattern=NON_BLANK)]
# thumbs, rating and correction are left out when not given (never null): the schema's oneOf says which one is
THUMBS_SCHEMA = {"type": "integer", "enum": [-1, 1], "description": "1 up, -1 down."}
RATING_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 5, "description": "1 to 5 stars."}
CORRECTION_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_NOTE, "pattern": NON_BLANK,
                     "description": "What the answer should have said."}  # fmt: skip


class FeedbackIn(BaseModel):
    """Exactly one of ``thumbs``, ``rating`` or ``correction`` (each may come with a ``comment``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"type": "object", "required": [name]} for name in ONE_OF]},
    )

    thread_id: ThreadId
    run_id: RunId | None = Field(None, description="Rate this run's answer (its latest checkpoint).")
    checkpoint_id: CheckpointId | None = Field(None, description="Rate this checkpoint's answer (default: latest).")
    message_id: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="The AI message rated (default: the checkpoint's last AI message)."
    )
    thumbs: Annotated[Thumbs | None, WithJsonSchema(THUMBS_SCHEMA)] = None
    rating: Annotated[Rating | None, WithJsonSchema(RATING_SCHEMA)] = None
    correction: Annotated[Correction | None, WithJsonSchema(CORRECTION_SCHEMA)] = None
    comment: Note | None = None
    idempotency_key: IdempotencyKey | None = None

    @field_validator(*ONE_OF, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave the field out instead")
        return value


class PreferencePairIn(BaseModel):
    """Two answers to the same prompt, the better one ``chosen``."""

    model_config = ConfigDict(extra="forbid")

    thread_id: ThreadId
    checkpoint_id: CheckpointId | None = Field(None, description="The checkpoint the pair is about (default: latest).")
    prompt: Annotated[str, Field(min_length=1, max_length=MAX_PAIR_TEXT, pattern=NON_BLANK)] | None = Field(
        None, description="The prompt (default: the checkpoint's last human message)."
    )
    chosen: Annotated[str, Field(min_length=1, max_length=MAX_PAIR_TEXT, pattern=NON_BLANK)]
    rejected: Annotated[str, Field(min_length=1, max_length=MAX_PAIR_TEXT, pattern=NON_BLANK)]
    comment: Note | None = None
    idempotency_key: IdempotencyKey | None = None


# -- helpers ------------------------------------------------------------------------------------------------------


def _one_of(body: FeedbackIn) -> db.Kind:
    """The kind of feedback given; 422 naming the field unless exactly one of thumbs, rating, correction is."""
    given = [name for name in ONE_OF if name in body.model_fields_set]
    if len(given) == 1:
        kind: db.Kind = given[0]  # type: ignore[assignment]
        return kind
    field = given[1] if given else ONE_OF[0]
    said = f"{' and '.join(given)} were given" if given else "none was given"
    message = f"{field}: give exactly one of thumbs (-1 or 1), rating (1-5) or correction; {said}"
    raise ApiError(422, "validation_error", message, [{"field": field, "message": message, "type": "one_of"}])


def _config(thread_id: str, checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    return {"configurable": configurable | ({"checkpoint_id": checkpoint_id} if checkpoint_id else {})}


async def _run_checkpoint(runtime: Runtime, row: store.Row, run_id: str) -> StateSnapshot | None:
    """The latest checkpoint written by the run (None when it wrote none)."""
    assistant = runtime.assistant_of(row)
    if assistant is None:
        return None
    history = assistant.graph.aget_state_history(_config(row["thread_id"]), filter={"run_id": run_id}, limit=1)
    async for snapshot in history:
        return snapshot
    return None


async def _checkpoint(runtime: Runtime, row: store.Row, checkpoint_id: str | None, run_id: str | None) -> StateSnapshot:
    """The checkpoint rated: the one named (404 when not in this thread), else the run's latest, else the
    thread's latest; 409 when the thread has none."""
    thread_id = row["thread_id"]
    if run_id is not None:
        await store.get_run(runtime.pool, thread_id, run_id)
    snapshot = await runtime.snapshot(row, checkpoint_id) if checkpoint_id else None
    if snapshot is None and run_id is not None:
        snapshot = await _run_checkpoint(runtime, row, run_id)
    if snapshot is None:
        snapshot = await runtime.snapshot(row)
    if snapshot is None:
        raise ApiError(409, "no_answer", f"thread {thread_id} has no checkpoint yet: there is no answer to rate")
    written_by = (snapshot.metadata or {}).get("run_id")
    if checkpoint_id and run_id and written_by and str(written_by) != run_id:
        raise ApiError(409, "run_mismatch", f"checkpoint_id: checkpoint {checkpoint_id} was written by run "
                       f"{written_by}, not by run_id {run_id}")  # fmt: skip
    return snapshot


def _checkpoint_id(snapshot: StateSnapshot) -> str:
    return str(snapshot.config["configurable"]["checkpoint_id"])


def _run_of(snapshot: StateSnapshot) -> str | None:
    run_id = (snapshot.metadata or {}).get("run_id")
    return str(run_id) if run_id else None


def _snapshot(snapshot: StateSnapshot, message_id: str | None, thread_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Prompt and context of the rated answer; 404 for a message not in the checkpoint, 409 for one not an answer."""
    values = to_jsonable(snapshot.values)
    if not isinstance(values, dict):
        values = {"value": values}
    try:
        return db.snapshot_of(values, message_id)
    except db.UnknownMessage as exc:
        raise ApiError(404, "not_found", f"message_id: {exc} (checkpoint {_checkpoint_id(snapshot)} of thread "
                       f"{thread_id})") from exc  # fmt: skip
    except db.NotAnAnswer as exc:
        raise ApiError(409, "not_an_answer", f"message_id: {exc}; rate an AI message") from exc


async def _replayed(runtime: Runtime, key: str | None, claims: dict[str, Any]) -> JSONResponse | None:
    """The answer to a retry: the feedback already written with ``key`` (200), or 409 when it is other feedback."""
    if key is None:
        return None
    existing = await db.find_by_key(runtime.pool, key)
    if existing is None:
        return None
    _check_same(existing, claims)
    return JSONResponse(existing, 200)


def _check_same(existing: dict[str, Any], claims: dict[str, Any]) -> None:
    try:
        db.check_same(existing, claims)
    except db.IdempotencyConflict as exc:
        raise ApiError(409, "idempotency_conflict", str(exc)) from exc


async def _write(runtime: Runtime, new: db.NewFeedback) -> JSONResponse:
    try:
        row, created = await db.insert_feedback(runtime.pool, new)
    except db.IdempotencyConflict as exc:
        raise ApiError(409, "idempotency_conflict", str(exc)) from exc
    return JSONResponse(row, 201 if created else 200)


def _claims(principal: Principal, thread_id: str, kind: db.Kind, **values: Any) -> dict[str, Any]:
    return {"thread_id": thread_id, "kind": kind, "actor": principal.id, **values}


# -- routes -------------------------------------------------------------------------------------------------------


WRITE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A retry: the feedback already written with this idempotency_key",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    404: {"model": ErrorEnvelope, "description": "Not found: the thread, run, checkpoint or message named"},
    **errors(409),
}


@router.post("/feedback", status_code=201, responses=WRITE_ANSWERS, summary="Rate an answer")
async def post_feedback(body: FeedbackIn, runtime: RuntimeDep, principal: Operator) -> JSONResponse:
    """Thumbs (-1 | 1), a rating (1-5) or a correction of the answer in a thread's checkpoint: the one named, else
    the latest of ``run_id``, else the thread's latest. The prompt and context the answer was based on are copied
    from that checkpoint. 201 with the stored row (200 with the row already written for a retried
    ``idempotency_key``); 404 for a thread, run, checkpoint or message not found in the thread; 409 for a thread
    without a checkpoint or an idempotency key used for other feedback; 422 naming the field."""
    kind = _one_of(body)
    row = await store.fetch_thread(runtime.pool, body.thread_id)
    claims = _claims(principal, body.thread_id, kind, thumbs=body.thumbs, rating=body.rating,
                     correction=body.correction, comment=body.comment, run_id=body.run_id,
                     checkpoint_id=body.checkpoint_id, message_id=body.message_id)  # fmt: skip
    replay = await _replayed(runtime, body.idempotency_key, claims)
    if replay is not None:
        return replay
    snapshot = await _checkpoint(runtime, row, body.checkpoint_id, body.run_id)
    prompt, context = _snapshot(snapshot, body.message_id, body.thread_id)
    new = db.NewFeedback(
        thread_id=body.thread_id, kind=kind, actor=principal.id, checkpoint_id=_checkpoint_id(snapshot),
        prompt=prompt, context=context, run_id=body.run_id or _run_of(snapshot), message_id=context.get("message_id"),
        thumbs=None if body.thumbs is None else int(body.thumbs), rating=body.rating, correction=body.correction,
        comment=body.comment, idempotency_key=body.idempotency_key,
    )  # fmt: skip
    return await _write(runtime, new)


@router.post("/feedback/preference-pair", status_code=201, responses=WRITE_ANSWERS,
             summary="Store a preference pair")  # fmt: skip
async def post_preference_pair(body: PreferencePairIn, runtime: RuntimeDep, principal: Operator) -> JSONResponse:
    """A chosen and a rejected answer to one prompt, tied to a thread's checkpoint (the latest by default); the
    prompt is the checkpoint's last human message unless given. 201 with the stored row (200 for a retried
    ``idempotency_key``); 404 for a thread or checkpoint not found; 409 for a thread without a checkpoint, a pair
    whose two answers are the same, or an idempotency key used for other feedback."""
    row = await store.fetch_thread(runtime.pool, body.thread_id)
    claims = _claims(principal, body.thread_id, "preference", chosen=body.chosen, rejected=body.rejected,
                     comment=body.comment, checkpoint_id=body.checkpoint_id)  # fmt: skip
    replay = await _replayed(runtime, body.idempotency_key, claims)
    if replay is not None:
        return replay
    snapshot = await _checkpoint(runtime, row, body.checkpoint_id, None)
    if body.chosen.strip() == body.rejected.strip():
        raise ApiError(409, "same_answers", "rejected: is the same text as chosen; a pair needs two different answers")
    prompt, context = _snapshot(snapshot, None, body.thread_id)
    if body.prompt is not None:
        prompt = prompt | {"text": body.prompt, "given": True}
    new = db.NewFeedback(
        thread_id=body.thread_id, kind="preference", actor=principal.id, checkpoint_id=_checkpoint_id(snapshot),
        prompt=prompt, context=context, run_id=_run_of(snapshot), chosen=body.chosen, rejected=body.rejected,
        comment=body.comment, idempotency_key=body.idempotency_key,
    )  # fmt: skip
    return await _write(runtime, new)


@router.get("/feedback/stats", summary="Feedback counts and mean rating, per assistant")
async def feedback_stats(
    runtime: RuntimeDep,
    _: Viewer,
    assistant_id: Annotated[str | None, Query(pattern=ID_PATTERN, description="Only this assistant's threads.")] = None,
    since: SinceQuery = None,
) -> dict[str, Any]:
    """``{total, by_kind {thumbs, rating, correction, preference}, thumbs {up, down}, rating {count, mean},
    assistants: [{assistant_id, ...the same counts}], assistant_id, since}``; ``mean`` is null without ratings."""
    stats = await db.feedback_stats(runtime.pool, assistant_id, since)
    return stats | {"assistant_id": assistant_id, "since": since.isoformat() if since else None}


EXPORT_ANSWER = {
    "description": "JSON Lines: one preference pair or rated answer per line, oldest first",
    "content": {NDJSON: {"schema": {"type": "string", "description": "One JSON object per line."}}},
}


async def _lines(runtime: Runtime, kind: db.Kind | None, since: dt.datetime | None) -> AsyncIterator[bytes]:
    count = 0
    async for row in db.export_rows(runtime.pool, kind, since):
        count += 1
        yield (json.dumps(db.export_line(row), ensure_ascii=False) + "\n").encode()
    log.info("feedback exported", extra={"lines": count, "kind": kind})


@router.get("/feedback/export", summary="Export feedback as JSON Lines", response_class=StreamingResponse,
            responses={200: EXPORT_ANSWER})  # fmt: skip
async def export_feedback(
    runtime: RuntimeDep,
    _: Admin,
    kind: Annotated[db.Kind | None, Query(description="Only this kind of feedback.")] = None,
    since: SinceQuery = None,
) -> StreamingResponse:
    """Streamed ``application/x-ndjson``, oldest first. Preference pairs: ``{kind, prompt, chosen, rejected,
    comment?, ...}``; rated answers: ``{kind, prompt, completion, thumbs | rating | correction, comment?, ...}``;
    each also with ``prompt_messages`` (the conversation before the answer), ``context`` (tool results, state),
    ``thread_id``, ``run_id``, ``checkpoint_id``, ``message_id``, ``feedback_id``, ``rater`` and ``created_at``.
    Admin only: the lines hold conversation text."""
    headers = {"Content-Disposition": 'attachment; filename="feedback.jsonl"'}
    return StreamingResponse(_lines(runtime, kind, since), media_type=NDJSON, headers=headers)
