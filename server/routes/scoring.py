"""Scoring endpoints: one order now, a CSV as a background job, a stream of events, and anomaly checks.

``POST /predict`` scores and stores one order synchronously; ``POST /predict/batch`` stores a CSV upload as a
job (202 + ``batch_job_id``) that any server process runs (``server.scoring_jobs``); ``GET /batch/{id}/...``
report on it; ``POST /events`` stores events (a JSON array, or NDJSON) before answering 202 and the micro-batcher
scores them; ``POST /detect-anomaly`` scores one order's features without storing anything. Orders are the
seed's enriched schema (:class:`OrderIn`); categories are matched case-insensitively, as in CSV files. Without
a delay model (or, for anomalies, the anomaly detector) these endpoints answer 503 saying so.
"""

from __future__ import annotations

import email.policy
import re
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from email.parser import BytesParser
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from ml.errors import InputError
from rag.policy import IMPORTANCES, get_policy
from rag.schemas import JSON_INTEGER
from server.auth import Operator, Viewer
from server.deps import ResourcesDep
from server.errors import ApiError, validation_problems
from server.input_guard import InputProblem, parse_json_body
from server.resources import Resources
from server.routes.deviations import Deviation, StoredPrediction, TopFactor
from server.runtime.schemas import LimitQuery, OffsetQuery
from server.scoring_jobs import accept_events, auto_start, get_batch_job, submit_batch
from tools import deviations as store
from tools.scoring import (
    ORDER_ID_PATTERN,
    ORDER_ID_RULE,
    ORDER_STATUSES,
    PAYMENT_STATUSES,
    ScoringUnavailable,
    score_anomaly,
    score_records,
)

router = APIRouter(tags=["scoring"])

BatchIdPath = Annotated[uuid.UUID, Path(description="The batch job id (a UUID).")]
MAX_EVENTS = 10_000
NDJSON = "application/x-ndjson"


# -- the order as upstream sends it -------------------------------------------------------------------------------


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


def _any_case(values: Sequence[str]) -> str:
    """A pattern matching ``values`` in any letter case, with spaces around (as the feature pipeline reads them)."""
    alternatives = "|".join(
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in v) for v in values
    )
    return f"^ *(?:{alternatives}) *$"


def _check_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date_from_datetime_parsing", "must be a date written YYYY-MM-DD") from None
    return value


JSON_NUMBER = BeforeValidator(_json_number)
DateText = Annotated[
    str,
    Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
    AfterValidator(_check_date),
    WithJsonSchema({"type": "string", "format": "date", "description": "YYYY-MM-DD"}),
]
PrintableText = Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
_POLICY = get_policy()
PaymentStatus = Literal["paid", "pending", "refunded"]
OrderStatus = Literal["processing", "shipped", "delivered", "delayed"]
assert get_args(PaymentStatus) == PAYMENT_STATUSES and get_args(OrderStatus) == ORDER_STATUSES


def _category(values: Sequence[str], what: str) -> Any:
    return Field(pattern=_any_case(values), description=f"{what}: {', '.join(values)} (any letter case).")


class OrderFields(BaseModel):
    """An order in the seed's enriched schema; the ten shipping features are required, the rest optional."""

    model_config = ConfigDict(extra="forbid")

    customer_id: (
        Annotated[str, Field(max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")]
        | Annotated[int, Field(ge=0, le=10**15), JSON_INTEGER]
        | None
    ) = Field(None, description="Opaque: 'C00123' or 17.")
    order_date: DateText | None = None
    promised_delivery_date: DateText | None = None
    ship_date: DateText | None = None
    delivery_date: DateText | None = None
    warehouse_block: str = _category(sorted(_POLICY.warehouses.blocks), "Warehouse block")
    mode_of_shipment: str = _category(list(_POLICY.shipping.modes), "Shipping mode")
    carrier_name: PrintableText | None = None
    tracking_id: PrintableText | None = None
    customer_care_calls: Annotated[int, Field(ge=0, le=10_000), JSON_INTEGER]
    customer_rating: Annotated[int, Field(ge=1, le=5), JSON_INTEGER]
    prior_purchases: Annotated[int, Field(ge=0, le=1_000_000), JSON_INTEGER]
    gender: str = _category(["F", "M"], "Customer gender")
    product_importance: str = _category(list(IMPORTANCES), "Product importance")
    cost_of_product: Annotated[float, Field(ge=0, le=10_000_000), JSON_NUMBER]
    discount_offered: Annotated[float, Field(ge=0, le=100), JSON_NUMBER] = Field(description="Percent, 0-100.")
    weight_in_gms: Annotated[float, Field(gt=0, le=100_000_000), JSON_NUMBER]
    payment_status: PaymentStatus | None = None
    order_status: OrderStatus | None = None
    order_value: Annotated[float, Field(ge=0, le=10_000_000_000), JSON_NUMBER] | None = Field(
        None, description="What the customer paid; else the seeded order's, else cost x quantity net of discount."
    )
    quantity: Annotated[int, Field(ge=1, le=1_000_000), JSON_INTEGER] | None = None


OrderId = Annotated[str, Field(pattern=ORDER_ID_PATTERN)] | Annotated[int, Field(ge=0, le=10**15), JSON_INTEGER]


class OrderIn(OrderFields):
    """An order to score. ``order_id`` is the upstream system's id: a string (``ORD-17``) or a number (17)."""

    order_id: OrderId = Field(description=f"The upstream id: {ORDER_ID_RULE}; or a whole number.")


class AnomalyIn(OrderFields):
    """An order whose features to check; the id is optional (echoed back)."""

    order_id: OrderId | None = None


def _payload(order: OrderFields) -> dict[str, Any]:
    return order.model_dump(mode="json", exclude_none=True)


# -- responses ------------------------------------------------------------------------------------------------------


class AnomalyOut(BaseModel):
    anomaly_score: float = Field(description="In (0, 1]; higher is more anomalous.")
    is_anomaly: bool = Field(description="Above the detector's threshold (the top 1% of its training orders).")
    model_version: str


class PredictionOut(BaseModel):
    """One order's score, as stored."""

    order_id: str
    customer_ref: str | None
    known_order: bool
    delay_probability: float = Field(description="Calibrated P(late).")
    severity: Literal["critical", "warning", "info", "none"] = Field(description="After the policy's escalators.")
    top_factors: list[TopFactor]
    model_version: str
    order_value: float | None = Field(description="The value the escalator read.")
    anomaly: AnomalyOut | None = Field(description="Null when the anomaly detector is not loaded.")
    deviation: Deviation | None


class AnomalyResult(AnomalyOut):
    order_id: str | None


class BatchAccepted(BaseModel):
    batch_job_id: str
    status: Literal["pending"]
    status_url: str


class BatchError(BaseModel):
    row: int | None = Field(description="The line in the file (the header is line 1); the event id for events.")
    field: str | None
    allowed: list[str] | None
    message: str


class BatchStatus(BaseModel):
    """A job: ``pending`` -> ``processing`` -> ``completed`` | ``failed`` (failed: the file as a whole is unusable)."""

    batch_job_id: str
    source: str = Field(description="batch (a CSV upload) or stream (a micro-batch of events).")
    filename: str | None
    status: Literal["pending", "processing", "completed", "failed"]
    rows_total: int
    rows_ok: int
    rows_failed: int
    errors: list[BatchError] = Field(description="The first 1,000 bad rows, each with its line and field.")
    attempts: int
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    summary: dict[str, Any] = Field(description="Progress (rows_done) and counts by severity.")


class PredictionPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[StoredPrediction]


class DeviationList(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[Deviation]


class EventsAccepted(BaseModel):
    accepted: int
    first_event_id: int
    last_event_id: int
    flush_rows: int = Field(description="Events are scored once this many wait ...")
    flush_seconds: float = Field(description="... or once the oldest has waited this long.")


# -- helpers --------------------------------------------------------------------------------------------------------


def _unavailable(exc: ScoringUnavailable) -> ApiError:
    return ApiError(503, "model_unavailable", str(exc))


def _invalid(problems: Sequence[InputError], prefix: str = "") -> ApiError:
    details = [{"field": f"{prefix}{e.field or 'body'}", "message": str(e), "type": "invalid_input"} for e in problems]
    return ApiError(422, "validation_error", "; ".join(d["message"] for d in details), details)


async def _job(batch_id: uuid.UUID, res: Resources) -> dict[str, Any]:
    job = await get_batch_job(res.pool, str(batch_id))
    if job is None:
        raise ApiError(404, "not_found", f"no batch job {batch_id}")
    return job


# -- routes ---------------------------------------------------------------------------------------------------------


@router.post("/predict", response_model=PredictionOut, summary="Score one order now (and store it)")
async def predict(body: OrderIn, res: ResourcesDep, _: Operator) -> dict[str, Any]:
    """Scores the order, stores its prediction (replacing the previous one) and its deviation when it is info or
    above, and starts the deviation workflow when the deviation reaches the policy's auto-start level."""
    try:
        result = await score_records([_payload(body)], source="api")
    except ScoringUnavailable as exc:
        raise _unavailable(exc) from exc
    except InputError as exc:
        raise _invalid([exc]) from exc
    if result.errors:
        raise _invalid(result.errors)
    await auto_start(res.runtime, result.auto_start)
    view = await store.order_view(str(body.order_id))
    assert view is not None and view["prediction"] is not None
    prediction = view["prediction"]
    anomaly = None
    if prediction["anomaly_score"] is not None:
        anomaly = {
            "anomaly_score": prediction["anomaly_score"],
            "is_anomaly": prediction["is_anomaly"],
            "model_version": prediction["anomaly_model_version"],
        }
    return {
        "order_id": view["order_id"],
        "customer_ref": view["customer_ref"],
        "known_order": view["known_order"],
        "delay_probability": prediction["delay_probability"],
        "severity": prediction["severity"],
        "top_factors": prediction["top_features"],
        "model_version": prediction["model_version"],
        "order_value": prediction["order_value"],
        "anomaly": anomaly,
        "deviation": view["deviation"],
    }


def _upload(body: bytes, content_type: str) -> tuple[str | None, bytes]:
    """The ``file`` part of a multipart/form-data body (its file name and bytes); 422 naming what is wrong."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type.lower():
        raise ApiError(
            422,
            "validation_error",
            "body: send the CSV as multipart/form-data with a part named 'file'",
            [{"field": "body", "message": "expected multipart/form-data", "type": "content_type"}],
        )
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\nMIME-Version: 1.0\r\n\r\n"
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    files = []
    for part in message.iter_parts() if message.is_multipart() else ():
        field = part.get_param("name", header="content-disposition")
        if field != "file":
            shown = re.sub(r"[\x00-\x1f\x7f]", "?", str(field))[:80]
            raise ApiError(
                422,
                "validation_error",
                f"{shown}: unexpected part; send only the part 'file'",
                [{"field": shown, "message": "unexpected part", "type": "extra_forbidden"}],
            )
        files.append(part)
    if len(files) == 1:
        name = files[0].get_filename()
        data = files[0].get_payload(decode=True)
        clean = re.sub(r"[\x00-\x1f\x7f]", "", str(name))[:200] if name else None
        return clean, data if isinstance(data, bytes) else b""
    if files:
        raise ApiError(
            422,
            "validation_error",
            "file: send one part named 'file'",
            [{"field": "file", "message": "more than one part named file", "type": "too_long"}],
        )
    raise ApiError(
        422,
        "validation_error",
        "file: missing; send the CSV in a multipart part named 'file'",
        [{"field": "file", "message": "missing", "type": "missing"}],
    )


_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "additionalProperties": False,
                    "properties": {
                        "file": {
                            "type": "string",
                            "pattern": "^[^\\u0000]*[\\r\\n][^\\u0000]*$",
                            "description": "The CSV (UTF-8 text: a header line, then rows), in the seed's enriched "
                            "schema.",
                        }
                    },
                },
                "encoding": {"file": {"contentType": "text/csv"}},
            }
        },
    }
}


@router.post(
    "/predict/batch",
    response_model=BatchAccepted,
    status_code=202,
    openapi_extra=_UPLOAD_DOC,
    summary="Score a CSV in the background",
)
async def predict_batch(request: Request, res: ResourcesDep, principal: Operator) -> JSONResponse:
    """Stores the file as a job and answers 202 with its id; any server process then scores it in chunks.
    Follow it at ``GET /batch/{id}/status``. 422 when the upload is not CSV text (not UTF-8, NUL bytes, no line
    break) or the body has no ``file`` part, or other parts; 413 over ``RIMAS_MAX_BODY_BYTES``. A text file
    that is not usable (no header, missing columns) becomes a ``failed`` job naming the problem; bad rows are
    errors with their line and field while the good rows are scored."""
    filename, data = _upload(await request.body(), request.headers.get("content-type", ""))
    if b"\n" not in data and b"\r" not in data:
        raise ApiError(
            422,
            "validation_error",
            "file: is not a CSV (no line break: expected a header line, then rows)",
            [{"field": "file", "message": "no line break", "type": "not_csv"}],
        )
    if b"\x00" in data:
        raise ApiError(
            422,
            "validation_error",
            "file: contains NUL bytes; expected a CSV text file",
            [{"field": "file", "message": "NUL bytes", "type": "not_text"}],
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            422,
            "validation_error",
            f"file: is not UTF-8 text (invalid byte at offset {exc.start})",
            [{"field": "file", "message": "not UTF-8", "type": "not_text"}],
        ) from exc
    job_id = await submit_batch(res.pool, data, filename=filename, created_by=principal.id)
    if res.scoring is not None:
        res.scoring.wake_jobs()
    status_url = f"/batch/{job_id}/status"
    body = BatchAccepted(batch_job_id=job_id, status="pending", status_url=status_url)
    return JSONResponse(body.model_dump(), 202, {"Location": status_url})


@router.get("/batch/{batch_id}/status", response_model=BatchStatus, summary="A batch job's status and errors")
async def batch_status(batch_id: BatchIdPath, res: ResourcesDep, _: Viewer) -> dict[str, Any]:
    return await _job(batch_id, res)


@router.get("/batch/{batch_id}/predictions", response_model=PredictionPage, summary="A batch job's predictions")
async def batch_predictions(
    batch_id: BatchIdPath, res: ResourcesDep, _: Viewer, limit: LimitQuery = 100, offset: OffsetQuery = 0
) -> dict[str, Any]:
    """The current predictions this job wrote, by order id (an order sent again later belongs to that batch)."""
    await _job(batch_id, res)
    return dict(await store.list_predictions(str(batch_id), limit=limit, offset=offset))


@router.get("/batch/{batch_id}/deviations", response_model=DeviationList, summary="A batch job's deviations")
async def batch_deviations(
    batch_id: BatchIdPath, res: ResourcesDep, _: Viewer, limit: LimitQuery = 100, offset: OffsetQuery = 0
) -> dict[str, Any]:
    await _job(batch_id, res)
    where = store.DeviationFilter(batch_job_id=str(batch_id))
    return dict(await store.list_deviations(where, limit=limit, offset=offset))


@router.get(
    "/batch/{batch_id}/agent-responses",
    response_model=DeviationList,
    summary="A batch job's deviations in the agents' hands",
)
async def batch_agent_responses(
    batch_id: BatchIdPath, res: ResourcesDep, _: Viewer, limit: LimitQuery = 100, offset: OffsetQuery = 0
) -> dict[str, Any]:
    """The job's deviations whose workflow started (``thread_id``) or finished (``resolution``)."""
    await _job(batch_id, res)
    return dict(await store.list_agent_responses(str(batch_id), limit=limit, offset=offset))


_EVENTS_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_EVENTS,
                    "items": {"$ref": "#/components/schemas/OrderIn"},
                }
            },
            NDJSON: {"schema": {"type": "string", "description": "One OrderIn JSON object per line."}},
        },
    }
}
_EVENTS = TypeAdapter(list[OrderIn])


def _events(body: bytes, content_type: str, max_depth: int) -> list[OrderIn]:
    """The events of a JSON array or NDJSON body, validated; 422 naming ``[i].field`` (i counts from 0)."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        if media == NDJSON:
            lines = [line for line in body.split(b"\n") if line.strip()]
            values = []
            for number, line in enumerate(lines, start=1):
                try:
                    values.append(parse_json_body(line, max_depth))
                except InputProblem as problem:
                    raise ApiError(
                        422,
                        "validation_error",
                        f"line {number}: {problem.message}",
                        [{"field": f"line {number}", "message": problem.message, "type": problem.kind}],
                    ) from None
        elif media == "application/json" or media.endswith("+json"):
            values = parse_json_body(body, max_depth)
        else:
            raise ApiError(
                422,
                "validation_error",
                f"body: send application/json (an array of orders) or {NDJSON}",
                [{"field": "body", "message": f"unsupported media type {media!r}", "type": "content_type"}],
            )
    except InputProblem as problem:
        raise ApiError(
            422,
            "validation_error",
            problem.message,
            [{"field": problem.field, "message": problem.message, "type": problem.kind}],
        ) from None
    if not isinstance(values, list) or not values:
        raise ApiError(
            422,
            "validation_error",
            "body: expected a non-empty array of orders (or NDJSON lines)",
            [{"field": "body", "message": "expected a non-empty array", "type": "list_type"}],
        )
    if len(values) > MAX_EVENTS:
        raise ApiError(
            422,
            "validation_error",
            f"body: at most {MAX_EVENTS:,} events per request",
            [{"field": "body", "message": f"at most {MAX_EVENTS} events", "type": "too_long"}],
        )
    try:
        return _EVENTS.validate_python(values)
    except ValidationError as exc:
        from fastapi.exceptions import RequestValidationError

        problems = validation_problems(RequestValidationError(exc.errors(), body=body))
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:20])
        raise ApiError(422, "validation_error", f"invalid events: {summary}", problems) from None


@router.post(
    "/events",
    response_model=EventsAccepted,
    status_code=202,
    openapi_extra=_EVENTS_DOC,
    summary="Accept order events (micro-batched scoring)",
)
async def post_events(request: Request, res: ResourcesDep, principal: Operator) -> JSONResponse:
    """A JSON array of orders, or NDJSON (``Content-Type: application/x-ndjson``, one order per line). Every
    event is stored before the 202, so nothing accepted is lost; the micro-batcher scores the waiting events
    (source ``stream``) once ``RIMAS_EVENTS_FLUSH_ROWS`` wait or the oldest is ``RIMAS_EVENTS_FLUSH_SECONDS``
    old. One invalid event refuses the request (422 naming ``[i].field``); nothing of it is stored."""
    events = _events(await request.body(), request.headers.get("content-type", ""), res.settings.max_json_depth)
    ids = await accept(res, [_payload(e) for e in events], principal.id)
    settings = res.scoring.settings if res.scoring is not None else None
    body = EventsAccepted(
        accepted=len(ids),
        first_event_id=ids[0],
        last_event_id=ids[-1],
        flush_rows=settings.events_flush_rows if settings else 0,
        flush_seconds=settings.events_flush_seconds if settings else 0.0,
    )
    return JSONResponse(body.model_dump(), 202)


async def accept(res: Resources, payloads: list[dict[str, Any]], who: str) -> list[int]:
    """Store events, then wake this process's flusher (it scores them when they are due)."""
    ids = await accept_events(res.pool, payloads, who)
    if res.scoring is not None:
        res.scoring.wake_events()
    return ids


@router.post("/detect-anomaly", response_model=AnomalyResult, summary="Anomaly score of one order (not stored)")
async def detect_anomaly(body: AnomalyIn, _: Operator) -> dict[str, Any]:
    """How unusual the order's ten shipping features are: ``anomaly_score`` in (0, 1] (higher is more
    anomalous), ``is_anomaly`` above the detector's threshold, and the detector's version."""
    try:
        out = score_anomaly([_payload(body)])[0]
    except ScoringUnavailable as exc:
        raise _unavailable(exc) from exc
    except InputError as exc:
        raise _invalid([exc]) from exc
    return {**out, "order_id": str(body.order_id) if body.order_id is not None else None}
