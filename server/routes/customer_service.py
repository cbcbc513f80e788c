"""The shop assistant's customer service endpoints (the AI Shop Assistant seed's contract).

``POST /api/customer/profile`` (viewer) answers a customer's profile with their analytics, ``POST
/api/customer/support-ticket`` (operator) opens a support ticket, and ``POST /api/customer/loyalty`` reads (viewer)
or earns and redeems (operator) loyalty points. Bodies carry the seed's ``action`` field, which must name the
endpoint's operation. Answers are the seed's ``{"status": "success", "task_id", "data"}``; every error is the
seed's envelope, rendered by :class:`server.routes.shop.ShopRoute` as on the inventory and pricing routes.

The loyalty route needs a viewer's key; ``earn`` and ``redeem`` check for the operator role themselves (403 naming
it). Reads never write; a ticket or a points change is recorded in ``audit_log`` under the task id of its answer,
with the key's name, in the same transaction as the write (a refused one as ``TASK_FAILED``, a retry as
``TASK_REPLAYED``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from psycopg import AsyncConnection
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from rag.schemas import JSON_INTEGER, NON_BLANK
from server.auth import Operator, Principal, Viewer
from server.errors import ApiError
from server.routes.shop import ShopRoute, ok, shop_errors, task_id_of
from tools.compliance import record_audit
from tools.customer_service import (
    MAX_POINTS,
    InsufficientPoints,
    LoyaltyTransaction,
    Ticket,
    balance,
    change_points,
    open_ticket,
    profile,
    require_customer,
)
from tools.inventory import ShopError

TICKET_ENDPOINT = "/api/customer/support-ticket"
LOYALTY_ENDPOINT = "/api/customer/loyalty"

router = APIRouter(tags=["shop"], route_class=ShopRoute)


# -- request models -------------------------------------------------------------------------------------------


def _customer_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError("customer_id_type", "must be a customer id: an integer such as 123 (or a string "
                                  "such as \"C00123\")")  # fmt: skip
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError("customer_id_type", "must be a whole number (a customer id such as 123)")
        return int(value)
    return value


CustomerNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]
CustomerText = Annotated[str, Field(min_length=1, max_length=64, pattern=NON_BLANK)]
CustomerId = Annotated[CustomerNumber | CustomerText, BeforeValidator(_customer_value),
                       Field(description="A customer id: an integer such as 123, or a string such as 'C00123'.")]
KEY_PATTERN = r"^[A-Za-z0-9._:-]+$"
IdempotencyKey = Annotated[str | None, Field(min_length=1, max_length=200, pattern=KEY_PATTERN,
                                             description="A retry with the same key writes nothing twice.")]
Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=NON_BLANK)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomerProfileRequest(_Body):
    action: Literal["query_customer"] = "query_customer"
    customer_id: CustomerId


class SupportTicketRequest(_Body):
    action: Literal["create_ticket"] = "create_ticket"
    customer_id: CustomerId
    subject: Annotated[str, Field(min_length=1, max_length=200, pattern=NON_BLANK)]
    description: Annotated[str, Field(min_length=1, max_length=5000, pattern=NON_BLANK)]
    priority: Literal["low", "medium", "high"] = "medium"
    order_id: Annotated[str | None, Field(min_length=1, max_length=64, pattern=KEY_PATTERN,
                                          description="One of the customer's orders the ticket is about.")] = None
    idempotency_key: IdempotencyKey = None


_CHANGE_ONLY = ("points", "reason", "idempotency_key")
_LOYALTY_VARIANTS: dict[str, Any] = {"oneOf": [
    {"properties": {"action": {"const": "balance"}},
     "not": {"anyOf": [{"required": [name]} for name in _CHANGE_ONLY]}},
    {"properties": {"action": {"enum": ["earn", "redeem"]}, "points": {"type": "integer"}},
     "required": ["points"]},
]}  # fmt: skip
"""What the route enforces beyond the fields: balance takes none of the change's fields, a change needs points."""


class LoyaltyRequest(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_LOYALTY_VARIANTS)

    action: Literal["balance", "earn", "redeem"] = Field(description="balance (viewer): the points; earn, redeem "
                                                         "(operator): change them.")  # fmt: skip
    customer_id: CustomerId
    points: Annotated[int, Field(ge=1, le=MAX_POINTS), JSON_INTEGER] | None = Field(
        None, description="Points to earn or redeem (required for those; not for balance).")
    reason: Reason | None = Field(None, description="Why the points change (recorded in the ledger).")
    idempotency_key: IdempotencyKey = None


# -- response models ------------------------------------------------------------------------------------------


class RfmData(BaseModel):
    recency_days: int
    frequency: int
    monetary: float


class CustomerAnalyticsData(BaseModel):
    as_of: str
    rfm: RfmData | None
    rfm_segment: str | None
    lifetime_value: float | None
    clv_horizon_days: int | None
    expected_purchases: float | None
    p_active: float | None
    churn_risk: bool | None
    churn_score: float | None
    churn_reason: str | None
    how: str


class ProfileData(BaseModel):
    customer_id: int
    name: str
    email: str
    city: str
    segment: str
    loyalty_points: int
    member_since: str
    prior_purchases: int
    rating: int
    orders: int
    refunded_orders: int
    total_purchases: float = Field(description="The sum of order_value over the customer's orders not refunded.")
    first_order: str | None
    last_order: str | None
    lifetime_value: float | None
    analytics: CustomerAnalyticsData


class TicketData(BaseModel):
    ticket_id: int
    idempotency_key: str
    customer_id: int
    order_id: str | None
    subject: str
    description: str
    priority: str
    status: str
    team: str
    actor: str
    created_at: str
    replayed: bool


class LoyaltyTransactionData(BaseModel):
    transaction_id: int
    idempotency_key: str
    task_id: str | None
    customer_id: int
    kind: Literal["earn", "redeem"]
    points: int
    delta: int
    balance_before: int
    balance_after: int
    reason: str
    actor: str
    created_at: str


class LoyaltyData(BaseModel):
    action: Literal["balance", "earn", "redeem"]
    customer_id: int
    loyalty_points: int = Field(description="The balance now (after the change, for earn and redeem).")
    transaction: LoyaltyTransactionData | None = Field(None, description="The ledger row of an earn or redeem.")
    replayed: bool | None = Field(None, description="True when a retried idempotency_key found the first change.")
    recent_transactions: list[LoyaltyTransactionData] | None = Field(None, description="balance: the latest "
                                                                     "changes, newest first.")  # fmt: skip


class ProfileAnswer(BaseModel):
    status: Literal["success"]
    task_id: str
    data: ProfileData


class TicketAnswer(BaseModel):
    status: Literal["success"]
    task_id: str
    data: TicketData


class LoyaltyAnswer(BaseModel):
    status: Literal["success"]
    task_id: str
    data: LoyaltyData


# -- routes ---------------------------------------------------------------------------------------------------


def _failed(exc: ShopError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details}


@router.post("/api/customer/profile", response_model=ProfileAnswer, responses=shop_errors(404),
             summary="A customer's profile and analytics")  # fmt: skip
async def customer_profile(body: CustomerProfileRequest, request: Request, _: Viewer) -> dict[str, Any]:
    """The customer's row (name, email, city, segment, loyalty points, ``member_since``, prior purchases, rating),
    their order figures (``total_purchases`` sums ``order_value`` over orders not refunded) and the analytics:
    RFM, the RFM segment, lifetime value and churn risk, with ``how`` they were computed. 404 naming the customer
    id (and a few close ones) when there is no such customer. Changes nothing."""
    customer_id = await require_customer(body.customer_id)
    return ok(request, await profile(customer_id))


def _ticket_writer(task_id: str, actor: str, request_body: dict[str, Any]) -> Any:
    async def write(conn: AsyncConnection[Any], ticket: Ticket) -> None:
        await record_audit(task_id, actor, TICKET_ENDPOINT, "TASK_COMPLETED", request_body, ticket.as_dict(), conn)

    return write


@router.post(TICKET_ENDPOINT, response_model=TicketAnswer, responses=shop_errors(404, 409),
             summary="Open a support ticket for a customer")  # fmt: skip
async def support_ticket(body: SupportTicketRequest, request: Request, principal: Operator) -> dict[str, Any]:
    """Open a ``customer_care`` ticket for the customer (about one of their orders, with ``order_id``) with a
    ``subject``, a ``description`` and a ``priority`` (low, medium, high), attributed to your key's name and
    recorded in the audit log. A retry with the same ``idempotency_key`` and the same request returns the first
    ticket (``replayed``) and writes nothing; the key reused for another request is a 409. 404 for an unknown
    customer or order; 422 naming the field for an order of another customer or bad input."""
    task_id = task_id_of(request)
    request_body = body.model_dump(mode="json")
    try:
        customer_id = await require_customer(body.customer_id)
        ticket = await open_ticket(customer_id, subject=body.subject, description=body.description,
                                   priority=body.priority, order_id=body.order_id, actor=principal.id,
                                   idempotency_key=body.idempotency_key, task_id=task_id,
                                   after_write=_ticket_writer(task_id, principal.id, request_body))  # fmt: skip
    except ShopError as exc:
        await record_audit(task_id, principal.id, TICKET_ENDPOINT, "TASK_FAILED", request_body, _failed(exc))
        raise
    if not ticket.created:
        await record_audit(task_id, principal.id, TICKET_ENDPOINT, "TASK_REPLAYED", request_body, ticket.as_dict())
    data = {**ticket.as_dict(), "replayed": not ticket.created}
    data.pop("created")
    return ok(request, data)


def _loyalty_writer(task_id: str, actor: str, request_body: dict[str, Any]) -> Any:
    async def write(conn: AsyncConnection[Any], change: LoyaltyTransaction) -> None:
        await record_audit(task_id, actor, LOYALTY_ENDPOINT, "TASK_COMPLETED", request_body, change.as_dict(), conn)

    return write


def _require_role(principal: Principal, action: str) -> None:
    if not principal.has("operator"):
        raise HTTPException(403, f"action {action} needs the operator role; your key has {principal.role}")


async def _change(body: LoyaltyRequest, customer_id: int, principal: Principal, task_id: str,
                  request_body: dict[str, Any]) -> LoyaltyTransaction:  # fmt: skip
    if body.points is None:
        raise ShopError("points", f"{body.action} needs points: a whole number from 1 to {MAX_POINTS:,}")
    reason = body.reason or ("points earned" if body.action == "earn" else "points redeemed")
    kind: Literal["earn", "redeem"] = "earn" if body.action == "earn" else "redeem"
    try:
        return await change_points(customer_id, kind, body.points, reason=reason, actor=principal.id,
                                   idempotency_key=body.idempotency_key, task_id=task_id,
                                   after_write=_loyalty_writer(task_id, principal.id, request_body))  # fmt: skip
    except InsufficientPoints as exc:  # a conflict with the balance, not bad input
        await record_audit(task_id, principal.id, LOYALTY_ENDPOINT, "TASK_FAILED", request_body, _failed(exc))
        raise ApiError(409, exc.code, f"{exc.field}: {exc.message}", exc.details) from exc


@router.post(LOYALTY_ENDPOINT, response_model=LoyaltyAnswer, responses=shop_errors(404, 409),
             summary="A customer's loyalty points: balance, earn, redeem")  # fmt: skip
async def loyalty(body: LoyaltyRequest, request: Request, principal: Viewer) -> dict[str, Any]:
    """``balance`` (viewer) answers the customer's points and their latest ledger rows. ``earn`` and ``redeem``
    (operator; 403 naming the role otherwise) change the points by ``points`` with a ``reason``, in one
    transaction that locks the customer's row and writes a ``loyalty_transactions`` row and an audit row: no
    change is lost to a concurrent one. A redeem beyond the balance is a 409 ``INSUFFICIENT_POINTS`` with the
    balance and the points asked, and writes nothing. A retry with the same ``idempotency_key`` returns the first
    change (``replayed``); the key reused for another change is a 409. 404 for an unknown customer."""
    task_id = task_id_of(request)
    if body.action == "balance":
        sent = [name for name in _CHANGE_ONLY if name in body.model_fields_set]
        if sent:
            raise ShopError(sent[0], "balance reads the points: send points, reason and idempotency_key only with "
                            "earn or redeem")  # fmt: skip
        customer_id = await require_customer(body.customer_id)
        found = await balance(customer_id)
        return ok(request, {"action": "balance", **found})
    _require_role(principal, body.action)
    request_body = body.model_dump(mode="json")
    try:
        customer_id = await require_customer(body.customer_id)
        change = await _change(body, customer_id, principal, task_id, request_body)
    except ShopError as exc:
        await record_audit(task_id, principal.id, LOYALTY_ENDPOINT, "TASK_FAILED", request_body, _failed(exc))
        raise
    if not change.created:
        await record_audit(task_id, principal.id, LOYALTY_ENDPOINT, "TASK_REPLAYED", request_body, change.as_dict())
    transaction = change.as_dict()
    transaction.pop("created")
    points = change.balance_after if change.created else (await balance(customer_id, recent=0))["loyalty_points"]
    return ok(request, {"action": body.action, "customer_id": customer_id, "loyalty_points": points,
                        "transaction": transaction, "replayed": not change.created})  # fmt: skip
