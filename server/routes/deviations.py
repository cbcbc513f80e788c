"""Deviations, orders, KPIs and the agents' work on them.

``GET /deviations`` (filters + paging), ``GET /deviations/{id}``, ``GET /orders/{id}`` (the order, its prediction,
its deviation, the actions in the ledgers and its thread), ``GET /kpi/dashboard`` (30-day KPIs), ``POST
/trigger-agent`` (start a deviation's workflow by hand) and ``GET /agent-response/{id}`` (what the workflow
decided). Reads need the viewer role; starting a workflow needs operator.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from rag.policy import severity_at_least
from server.auth import Operator, Viewer
from server.deps import ResourcesDep
from server.deviation_starter import ASSISTANT
from server.errors import ApiError
from server.openapi import errors
from server.runtime.schemas import LimitQuery, OffsetQuery
from server.scoring_jobs import auto_start
from tools import deviations as store
from tools import kpis
from tools.deps import current
from tools.scoring import ORDER_ID_PATTERN, ORDER_ID_RULE

router = APIRouter(tags=["deviations"])

Severity = Literal["critical", "warning", "info"]
Status = Literal["open", "in_progress", "awaiting_approval", "resolved", "escalated", "dismissed"]
Block = Literal["A", "B", "C", "D", "E", "F"]
Mode = Literal["Flight", "Road", "Ship"]
RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def _instant(value: Any) -> Any:
    """An RFC 3339 date-time with its offset (what the document says), not a number or a bare date."""
    if not isinstance(value, str) or not RFC3339.match(value):
        raise PydanticCustomError("datetime_type", "must be an RFC 3339 date-time such as 2026-10-31T00:00:00Z")
    text = value.upper().replace(":60", ":59", 1) if value[17:19] == "60" else value.upper()
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise PydanticCustomError("datetime_parsing", "is not a valid date-time: {why}", {"why": str(exc)}) from None


Instant = Annotated[datetime, BeforeValidator(_instant), WithJsonSchema({"type": "string", "format": "date-time"})]
OrderIdPath = Annotated[str, Path(pattern=ORDER_ID_PATTERN, description=f"The order id: {ORDER_ID_RULE}.")]
DeviationIdPath = Annotated[uuid.UUID, Path(description="The deviation id (a UUID).")]


# -- response models ------------------------------------------------------------------------------------------------


class TopFactor(BaseModel):
    """One feature's contribution to the delay risk, in words."""

    feature: str
    value: str | float
    effect: Literal["raises", "lowers"]
    contribution: float
    text: str = Field(description="e.g. 'A 40% discount raises the delay risk'.")


class Deviation(BaseModel):
    """A deviation: the order's risk beyond the info threshold, why, and where its workflow is."""

    deviation_id: str
    order_id: str
    severity: Severity
    status: Status
    reasons: list[str] = Field(description="Each threshold and escalator that applied, in words.")
    delay_probability: float | None
    batch_job_id: str | None
    prediction_id: int | None
    thread_id: str | None
    thread_url: str | None = Field(description="The deviation's thread in this API (/threads/{thread_id}).")
    resolution: dict[str, Any] | None = Field(description="What the workflow decided (summary, status, actions).")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    warehouse_block: str | None
    mode_of_shipment: str | None
    customer_ref: str | None


class DeviationPage(BaseModel):
    total: int = Field(description="Deviations matching the filters.")
    limit: int
    offset: int
    items: list[Deviation]


class StoredPrediction(BaseModel):
    """An order's current prediction."""

    prediction_id: int
    order_id: str
    batch_job_id: str | None
    source: Literal["api", "batch", "stream", "agent"]
    delay_probability: float
    severity: Literal["critical", "warning", "info", "none"]
    model_version: str
    top_features: list[TopFactor]
    features: dict[str, Any]
    anomaly_score: float | None
    is_anomaly: bool
    anomaly_model_version: str | None
    order_value: float | None
    created_at: datetime
    updated_at: datetime


class Action(BaseModel):
    """One ledger row about the order (a refund, a notification, a ticket...)."""

    kind: str = Field(description="refund, store_credit, notification, ticket, shipment_change, interaction, ...")
    action_id: str
    created_at: datetime
    actor: str
    policy_rule: str
    thread_id: str | None
    details: dict[str, Any]


class OrderView(BaseModel):
    order_id: str
    known_order: bool = Field(description="Whether the seeded orders table has it.")
    customer_ref: str | None
    source: str | None = Field(description="How the pipeline last received it (api, batch, stream, agent).")
    first_seen_at: datetime | None
    order: dict[str, Any] | None = Field(description="The order as last received (or the seeded row).")
    prediction: StoredPrediction | None
    deviation: Deviation | None
    actions: list[Action]
    thread_id: str | None
    thread_url: str | None


class SegmentRisk(BaseModel):
    segment: str
    orders: int
    mean_delay_probability: float
    predicted_on_time_pct: float
    alert: bool = Field(description="Mean P(late) above the policy's segment_risk_alert.")
    below_target: bool = Field(description="Predicted on-time rate below the policy's on_time_target_pct.")


class OnTime(BaseModel):
    orders: int = Field(description="Orders with a delivery date and a promised date.")
    on_time: int
    on_time_pct: float | None


class FulfillmentGap(BaseModel):
    shipped_orders: int
    shipped_high_risk: int = Field(description="Shipped orders whose severity is critical.")
    pct_of_shipped: float | None


class DeviationCounts(BaseModel):
    total: int
    by_status: dict[str, int]
    by_severity: dict[str, int]
    by_status_and_severity: dict[str, dict[str, int]]


class KpiDashboard(BaseModel):
    """Rolling-window KPIs (see tools.kpis for each definition)."""

    window_days: int
    since: datetime
    generated_at: datetime
    orders_scored: int
    mean_delay_probability: float | None
    predicted_on_time_pct: float | None
    expected_on_time_pct: float | None
    on_time_target_pct: float
    below_target: bool
    actual_on_time: OnTime
    high_risk_orders: int
    anomalies: int
    fulfillment_gap: FulfillmentGap
    segment_risk_alert: float
    segments: dict[str, list[SegmentRisk]]
    deviations: DeviationCounts


class TriggerByDeviation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deviation_id: uuid.UUID = Field(description="The deviation to work on.")


class TriggerByOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(
        pattern=ORDER_ID_PATTERN, description=f"The order whose deviation to work on: {ORDER_ID_RULE}."
    )


class Triggered(BaseModel):
    deviation_id: str
    order_id: str
    severity: Severity
    thread_id: str
    thread_url: str
    status: str


class AgentResponse(BaseModel):
    """What the deviation workflow decided: the ``resolution`` it wrote ({summary, status, actions, ...})."""

    deviation_id: str
    order_id: str
    severity: Severity
    status: Status
    thread_id: str | None
    thread_url: str | None
    started_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: dict[str, Any]


# -- routes ---------------------------------------------------------------------------------------------------------


@router.get("/deviations", response_model=DeviationPage, summary="List deviations (filters, paging)")
async def list_deviations(
    _: Viewer,
    severity: Annotated[list[Severity] | None, Query(description="Only these severities.")] = None,
    status: Annotated[list[Status] | None, Query(description="Only these statuses.")] = None,
    since: Annotated[Instant | None, Query(description="Created at or after (RFC 3339).")] = None,
    until: Annotated[Instant | None, Query(description="Created before (RFC 3339).")] = None,
    warehouse_block: Annotated[Block | None, Query(description="The order's warehouse block.")] = None,
    mode_of_shipment: Annotated[Mode | None, Query(description="The order's shipping mode.")] = None,
    order_id: Annotated[str | None, Query(pattern=ORDER_ID_PATTERN, description="One order's.")] = None,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> dict[str, Any]:
    """Newest first; ``total`` counts every match. Filters combine (and); a repeated ``severity`` or ``status``
    means any of them."""
    where = store.DeviationFilter(
        severity=list(severity or []),
        status=list(status or []),
        since=since,
        until=until,
        warehouse_block=warehouse_block,
        mode_of_shipment=mode_of_shipment,
        order_id=order_id,
    )
    return dict(await store.list_deviations(where, limit=limit, offset=offset))


@router.get("/deviations/{deviation_id}", response_model=Deviation, summary="One deviation")
async def get_deviation(deviation_id: DeviationIdPath, _: Viewer) -> dict[str, Any]:
    found = await store.get_deviation(str(deviation_id))
    if found is None:
        raise ApiError(404, "not_found", f"no deviation {deviation_id}")
    return found


@router.get("/orders/{order_id}", response_model=OrderView, summary="An order: prediction, deviation, actions")
async def get_order(order_id: OrderIdPath, _: Viewer) -> dict[str, Any]:
    """The order as last received (or the seeded row), its current prediction, its deviation, every action the
    ledgers hold for it, and the link to its deviation thread."""
    found = await store.order_view(order_id)
    if found is None:
        raise ApiError(404, "not_found", f"no order {order_id!r}: it was never scored and is not a seeded order")
    return found


@router.get("/kpi/dashboard", response_model=KpiDashboard, summary="Rolling KPIs")
async def kpi_dashboard(
    _: Viewer,
    window_days: Annotated[int | None, Query(ge=1, le=365, description="Days back (default: the policy's).")] = None,
) -> dict[str, Any]:
    """Segment risk by warehouse block, mode and importance (flagged above the policy's alert level), predicted
    and actual on-time rates, high-risk orders, the fulfillment gap, anomalies and deviations by status and
    severity, over the last ``window_days`` (the policy's ``kpis.window_days``, 30, by default)."""
    return dict(await kpis.dashboard(window_days))


class TrendSeries(BaseModel):
    segment: str
    mean_delay_probability: list[float | None] = Field(description="Per day of ``days``; null without orders.")
    orders: list[int] = Field(description="Orders per day of ``days``.")


class KpiTrend(BaseModel):
    dimension: kpis.Dimension
    window_days: int
    days: list[str] = Field(description="Every order date of the window, oldest first (ISO dates).")
    series: list[TrendSeries]


@router.get("/kpi/trend", response_model=KpiTrend, summary="Segment risk by order date")
async def kpi_trend(
    _: Viewer,
    dimension: kpis.Dimension = "warehouse_block",
    window_days: Annotated[int | None, Query(ge=1, le=365, description="Days back (default: the policy's).")] = None,
) -> dict[str, Any]:
    """Mean P(late) per segment of ``dimension`` (warehouse block, shipping mode or product importance) by the
    order's date, for the orders scored in the last ``window_days``, over the last ``window_days`` order dates."""
    return dict(await kpis.trend(dimension, window_days))


@router.post(
    "/trigger-agent",
    response_model=Triggered,
    status_code=202,
    responses=errors(404, 409),
    summary="Start the deviation workflow of a deviation or an order",
)
async def trigger_agent(
    body: TriggerByDeviation | TriggerByOrder, res: ResourcesDep, principal: Operator
) -> JSONResponse:
    """Exactly one of ``deviation_id`` or ``order_id``. The deviation must be at least the policy's ``review_at``
    level (warning) and not closed. 404 when there is no such deviation; 409 when it already has a thread (its
    id is in the message) or is not eligible, or when this server does not serve the deviation workflow."""
    if isinstance(body, TriggerByDeviation):
        found = await store.get_deviation(str(body.deviation_id))
        missing = f"no deviation {body.deviation_id}"
    else:
        page = await store.list_deviations(store.DeviationFilter(order_id=body.order_id), limit=1)
        found = page["items"][0] if page["items"] else None
        missing = f"order {body.order_id!r} has no deviation"
    if found is None:
        raise ApiError(404, "not_found", missing)
    deviation_id = found["deviation_id"]
    if found["thread_id"]:
        raise ApiError(
            409,
            "already_started",
            f"deviation {deviation_id} already has thread {found['thread_id']}",
            [{"field": "thread_id", "message": found["thread_id"], "type": "existing_thread"}],
        )
    review_at = current().policy.severity.review_at
    if not severity_at_least(found["severity"], review_at):
        raise ApiError(
            409,
            "not_eligible",
            f"deviation {deviation_id} is {found['severity']}; the workflow works on deviations from {review_at} up",
        )
    if found["status"] in ("resolved", "dismissed"):
        raise ApiError(409, "not_eligible", f"deviation {deviation_id} is {found['status']}")
    runtime = res.runtime
    if runtime is None or ASSISTANT not in runtime.registry:
        raise ApiError(
            409,
            "workflow_not_served",
            f"deviation {deviation_id} stays {found['status']}: this server "
            f"does not serve the {ASSISTANT!r} workflow (langgraph.json)",
        )
    started = await auto_start(runtime, [deviation_id], actor=principal.id)
    after = await store.get_deviation(deviation_id)
    assert after is not None
    if not started:  # another request started it first, or the start failed
        if after["thread_id"]:
            raise ApiError(
                409,
                "already_started",
                f"deviation {deviation_id} already has thread {after['thread_id']}",
                [{"field": "thread_id", "message": after["thread_id"], "type": "existing_thread"}],
            )
        raise ApiError(503, "unavailable", f"the workflow of deviation {deviation_id} could not be started; retry")
    out = Triggered(
        deviation_id=deviation_id,
        order_id=after["order_id"],
        severity=after["severity"],
        thread_id=started[0],
        thread_url=f"/threads/{started[0]}",
        status=after["status"],
    )
    return JSONResponse(out.model_dump(mode="json"), 202, {"Content-Location": out.thread_url})


@router.get(
    "/agent-response/{deviation_id}",
    response_model=AgentResponse,
    summary="What the workflow decided",
)
async def agent_response(deviation_id: DeviationIdPath, _: Viewer) -> dict[str, Any]:
    """The deviation's status and the ``resolution`` its workflow wrote; 404 while there is none yet."""
    found = await store.get_deviation(str(deviation_id))
    if found is None:
        raise ApiError(404, "not_found", f"no deviation {deviation_id}")
    if found["resolution"] is None:
        where = f"its thread {found['thread_id']} is {found['status']}" if found["thread_id"] else "no thread yet"
        raise ApiError(404, "not_found", f"deviation {deviation_id} has no agent response yet ({where})")
    return found
