"""The shop assistant's inventory, pricing and compliance endpoints (the AI Shop Assistant seed's contract).

``POST /api/inventory/query`` (viewer) reads stock, ``POST /api/inventory/update`` (operator) adjusts it, ``POST
/api/pricing/calculate`` and ``POST /api/pricing/recommend`` (viewer) price an item and suggest a discount, and
``POST /api/audit/compliance-check`` (viewer) runs the compliance rules on a proposed action. Bodies carry the
seed's ``action`` field, which must name the endpoint's operation. Answers are the seed's ``{"status": "success",
"task_id", "data"}``.

Errors on these routes use the seed's envelope, ``{"success": false, "task_id", "error": {code, message, details},
"timestamp", "detail"}`` (``detail`` repeats the message, where LangGraph clients read it): :class:`ShopRoute`
renders every error raised in a route of this router, the auth dependency's 401/403 and FastAPI's validation 422
included, so the rest of the API keeps its own envelope. A 422's ``details`` lists each problem with its
``field``; other errors give an object (a 404 names a few ``available_skus`` close to the one asked for).

Reads never write; an update is recorded in ``audit_log`` under the task id of its answer, with the key's name.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from psycopg import AsyncConnection
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.schemas import JSON_INTEGER, NON_BLANK
from server.auth import Operator, Viewer
from server.errors import ApiError, validation_problems
from server.openapi import DESCRIPTIONS
from tools.compliance import PriceChange, Transaction, check, record_audit
from tools.deps import ToolsNotReady
from tools.inventory import (
    Adjustment,
    IdempotencyKeyReused,
    NotFound,
    ShopError,
    StaleVersion,
    adjust_stock,
    require_category,
    require_stocked,
    require_store,
    resolve_sku,
    stock,
)
from tools.pricing import calculate, recommend

log = logging.getLogger(__name__)

UPDATE_ENDPOINT = "/api/inventory/update"
HTTP_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "DATA_NOT_FOUND",
              405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 422: "VALIDATION_ERROR",
              500: "INTERNAL_ERROR", 503: "SERVICE_UNAVAILABLE"}  # fmt: skip


# -- the seed's envelopes -------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_id_of(request: Request) -> str:
    """The task id of this request (set by :class:`ShopRoute`; answers and audit rows carry it)."""
    task_id = getattr(request.state, "shop_task_id", None)
    if task_id is None:
        task_id = request.state.shop_task_id = str(uuid.uuid4())
    return str(task_id)


def seed_error(status: int, task_id: str, code: str, message: str, details: Any = None,
               headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    body = {"success": False, "task_id": task_id, "error": {"code": code, "message": message, "details": details},
            "timestamp": _now(), "detail": message}  # fmt: skip
    return JSONResponse(body, status_code=status, headers=headers)


def _shop_error(exc: ShopError, task_id: str) -> JSONResponse:
    if isinstance(exc, NotFound):
        return seed_error(404, task_id, exc.code, f"{exc.field}: {exc.message}", exc.details)
    if isinstance(exc, StaleVersion | IdempotencyKeyReused):
        return seed_error(409, task_id, exc.code, f"{exc.field}: {exc.message}", exc.details)
    problem = {"message": exc.message, "type": exc.code.lower(), **exc.details}
    return seed_error(422, task_id, exc.code, f"{exc.field}: {exc.message}", [problem])


def _validation_error(exc: RequestValidationError, task_id: str) -> JSONResponse:
    problems = validation_problems(exc)
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return seed_error(422, task_id, "VALIDATION_ERROR", f"invalid request: {summary}", problems)


def _http_error(exc: StarletteHTTPException, task_id: str) -> JSONResponse:
    code = HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    return seed_error(exc.status_code, task_id, code, str(exc.detail), headers=dict(exc.headers or {}))


async def _guarded(handler: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
    task_id = task_id_of(request)
    try:
        return await handler(request)
    except ShopError as exc:
        return _shop_error(exc, task_id)
    except RequestValidationError as exc:
        return _validation_error(exc, task_id)
    except ApiError as exc:
        return seed_error(exc.status, task_id, exc.code.upper(), exc.message, exc.details)
    except StarletteHTTPException as exc:
        return _http_error(exc, task_id)
    except ToolsNotReady:
        return seed_error(503, task_id, "SERVICE_UNAVAILABLE", "the service is starting: its database is not ready")
    except Exception:
        log.exception("shop request failed", extra={"task_id": task_id, "path": request.url.path})
        return seed_error(500, task_id, "INTERNAL_ERROR", "internal error; see the server log for this task id")


class ShopRoute(APIRoute):
    """A route whose errors, all of them, are answered in the seed's error envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            return await _guarded(handler, request)

        return guarded


router = APIRouter(tags=["shop"], route_class=ShopRoute)


class SeedErrorInfo(BaseModel):
    code: str = Field(description="DATA_NOT_FOUND, VALIDATION_ERROR, VERSION_CONFLICT, NEGATIVE_STOCK, ...")
    message: str = Field(description="What went wrong, naming the field.")
    details: Any = Field(None, description="422: [{field, message, type}]; otherwise an object with the numbers.")


class SeedErrorEnvelope(BaseModel):
    """The seed's error answer."""

    success: Literal[False]
    task_id: str
    error: SeedErrorInfo
    timestamp: str
    detail: str = Field(description="The message again (where LangGraph clients read it).")


def shop_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` documenting the seed envelope for the codes these routes answer themselves."""
    return {code: {"model": SeedErrorEnvelope, "description": DESCRIPTIONS[code]} for code in (401, 403, *codes)}


def ok(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "task_id": task_id_of(request), "data": data}


# -- request models -------------------------------------------------------------------------------------------


def _sku_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError("sku_type", "must be a catalog sku: an integer such as 1003 (or a string naming one)")
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError("sku_type", "must be a whole number (a catalog sku such as 1003)")
        return int(value)
    return value


SkuNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]
SkuText = Annotated[str, Field(min_length=1, max_length=64, pattern=NON_BLANK)]
Sku = Annotated[SkuNumber | SkuText, BeforeValidator(_sku_value),
                Field(description="A catalog sku (an integer such as 1003).")]  # fmt: skip
StoreId = Annotated[int, Field(ge=1, le=2**31 - 1, description="A store id."), JSON_INTEGER]
Money = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False, strict=True)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InventoryQueryRequest(_Body):
    action: Literal["query", "reorder"] = Field("query", description="query: stock lines; reorder: only those to "
                                                "reorder now.")  # fmt: skip
    sku: Sku | None = None
    skus: Annotated[list[Sku] | None, Field(max_length=100)] = None
    store_id: StoreId | None = None
    category: Annotated[str | None, Field(min_length=1, max_length=100, pattern=NON_BLANK)] = None


class InventoryUpdateRequest(_Body):
    action: Literal["update"] = "update"
    sku: Sku
    store_id: StoreId
    delta: Annotated[int, Field(ge=-(10**9), le=10**9), JSON_INTEGER] | None = Field(
        None, description="Units to add (negative: remove).")
    set_to: Annotated[int, Field(ge=0, le=10**9), JSON_INTEGER] | None = Field(
        None, description="The counted on-hand quantity.")
    expected_version: Annotated[int, Field(ge=1, le=10**12), JSON_INTEGER] | None = Field(
        None, description="Refuse (409) unless the row is still at this version.")
    reason: Annotated[str, Field(min_length=1, max_length=500, pattern=NON_BLANK)]
    idempotency_key: Annotated[str | None, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$",
                                                 description="A retry with the same key changes nothing twice.")] \
        = None  # fmt: skip


class PriceCalculateRequest(_Body):
    action: Literal["calculate"] = "calculate"
    sku: Sku
    quantity: Annotated[int, Field(ge=1, le=10**6), JSON_INTEGER] = 1
    store_id: StoreId | None = Field(None, description="The store whose promotions apply (none: no promotion).")
    on: date | None = Field(None, description="The day priced (YYYY-MM-DD); today when absent.")


class PriceRecommendRequest(_Body):
    action: Literal["recommend"] = "recommend"
    sku: Sku
    store_id: StoreId | None = Field(None, description="One store's history and stock; all stores when absent.")


class PriceChangeCheck(_Body):
    type: Literal["price_change"]
    sku: Sku
    new_price: Money
    old_price: Annotated[float | None, Field(ge=0.01, le=1e12, allow_inf_nan=False,
                                             description="The catalog price when absent.")] = None  # fmt: skip


class TransactionCheck(_Body):
    type: Literal["transaction"]
    amount: Money


class ComplianceCheckRequest(_Body):
    action: Literal["compliance_check"] = "compliance_check"
    check: Annotated[PriceChangeCheck | TransactionCheck, Field(discriminator="type")]


# -- response models ------------------------------------------------------------------------------------------


class StockLine(BaseModel):
    store_id: int
    sku: int
    product_name: str
    category: str
    on_hand: int
    on_order: int
    lead_time_days: int
    mean_daily_sales: float | None
    days_of_cover: float | None
    reorder_point: float | None
    reorder: bool
    version: int
    sales_through: str | None
    updated_at: str


class StockData(BaseModel):
    items: list[StockLine]
    count: int


class AdjustmentData(BaseModel):
    adjustment_id: int
    idempotency_key: str
    task_id: str | None
    store_id: int
    sku: int
    kind: Literal["delta", "set"]
    requested: int
    expected_version: int | None
    before: int
    after: int
    delta: int
    version: int
    reason: str
    actor: str
    created_at: str
    replayed: bool


class PriceData(BaseModel):
    sku: int
    product_name: str
    store_id: int | None
    on: str
    base_price: float
    quantity: int
    discount_percent: float
    unit_price_after_discount: float
    total_cost: float
    savings: float
    applicable_rules: list[int]
    promotion: dict[str, Any] | None
    pricing_rule: dict[str, Any] | None
    limited_by: Literal["max_discount", "min_margin"] | None
    min_price: float
    explanation: str


class RecommendationData(BaseModel):
    sku: int
    product_name: str
    store_id: int | None
    current_price: float
    recommended_discount_percent: float
    recommended_price: float
    promotion_days: int
    reason: str
    expected_effect: dict[str, Any] | None
    elasticity: dict[str, Any]
    baseline_daily_units: float
    stock_position: int
    bounds: dict[str, Any]
    approval_role: str | None
    writes: str


class Violation(BaseModel):
    rule: str
    message: str
    limit: float
    value: float


class ComplianceData(BaseModel):
    passed: bool
    violations: list[Violation]
    action: dict[str, Any]
    policy_version: str
    citation: str


class StockAnswer(BaseModel):
    status: Literal["success"]
    task_id: str
    data: StockData


class AdjustmentAnswer(BaseModel):
    status: Literal["success"]
    task_id: str
    data: AdjustmentData


class PriceAnswer(BaseModel):
    status: Literal["success"]
    task_id: str
    data: PriceData


class RecommendationAnswer(BaseModel):
    status: Literal["success"]
    task_id: str
    data: RecommendationData


class ComplianceAnswer(BaseModel):
    status: Literal["success"]
    task_id: str
    data: ComplianceData


# -- routes ---------------------------------------------------------------------------------------------------


async def _query_skus(body: InventoryQueryRequest) -> list[int] | None:
    named = ([body.sku] if body.sku is not None else []) + list(body.skus or [])
    if not named:
        return None
    fields = (["sku"] if body.sku is not None else []) + [f"skus[{i}]" for i in range(len(body.skus or []))]
    return [await resolve_sku(value, field) for value, field in zip(named, fields, strict=True)]


@router.post("/api/inventory/query", response_model=StockAnswer, responses=shop_errors(404),
             summary="Stock levels, cover and reorder flags")  # fmt: skip
async def inventory_query(body: InventoryQueryRequest, request: Request, _: Viewer) -> dict[str, Any]:
    """Stock lines filtered by ``sku``/``skus``, ``store_id`` and ``category`` (all when absent): on hand, on order,
    lead time, version, the mean daily sales of the store's last 28 days, days of cover and whether to reorder (on
    hand + on order at most the lead time's demand). ``action: reorder`` keeps only the lines to reorder. 404 (with
    close matches) for an unknown sku, store or category, or a sku the store does not stock."""
    skus = await _query_skus(body)
    if body.store_id is not None:
        await require_store(body.store_id)
        for sku in skus or []:
            await require_stocked(body.store_id, sku)
    category = await require_category(body.category) if body.category is not None else None
    items = await stock(body.store_id, skus, category)
    if body.action == "reorder":
        items = [item for item in items if item["reorder"]]
    return ok(request, {"items": items, "count": len(items)})


def _audit_writer(task_id: str, actor: str, request_body: dict[str, Any]) -> Any:
    async def write(conn: AsyncConnection[Any], adjustment: Adjustment) -> None:
        await record_audit(task_id, actor, UPDATE_ENDPOINT, "TASK_COMPLETED", request_body, adjustment.as_dict(), conn)

    return write


async def _adjust(body: InventoryUpdateRequest, task_id: str, actor: str, request_body: dict[str, Any]) -> Adjustment:
    sku = await resolve_sku(body.sku)
    await require_store(body.store_id)
    await require_stocked(body.store_id, sku)
    return await adjust_stock(body.store_id, sku, delta=body.delta, set_to=body.set_to,
                              expected_version=body.expected_version, reason=body.reason, actor=actor,
                              idempotency_key=body.idempotency_key, task_id=task_id,
                              after_write=_audit_writer(task_id, actor, request_body))  # fmt: skip


@router.post(UPDATE_ENDPOINT, response_model=AdjustmentAnswer, responses=shop_errors(404, 409),
             summary="Adjust stock (a change or a count)")  # fmt: skip
async def inventory_update(body: InventoryUpdateRequest, request: Request, principal: Operator) -> dict[str, Any]:
    """Change one stock row's on hand by ``delta`` or to ``set_to`` (exactly one), with a ``reason``; recorded in the
    adjustments ledger and the audit log under your key's name. ``expected_version`` makes it conditional (409 when
    the row changed since). A retry with the same ``idempotency_key`` returns the first adjustment (``replayed``)
    and changes nothing; the key reused for another adjustment is a 409. 422 names the field for a result below 0
    (with the numbers) or bad input; 404 for an unknown sku or store, or a sku the store does not stock."""
    task_id = task_id_of(request)
    request_body = body.model_dump(mode="json")
    try:
        adjustment = await _adjust(body, task_id, principal.id, request_body)
    except ShopError as exc:
        outcome = {"code": exc.code, "message": exc.message, "details": exc.details}
        await record_audit(task_id, principal.id, UPDATE_ENDPOINT, "TASK_FAILED", request_body, outcome)
        raise
    if not adjustment.created:
        await record_audit(task_id, principal.id, UPDATE_ENDPOINT, "TASK_REPLAYED", request_body, adjustment.as_dict())
    data = {**adjustment.as_dict(), "replayed": not adjustment.created}
    data.pop("created")
    return ok(request, data)


@router.post("/api/pricing/calculate", response_model=PriceAnswer, responses=shop_errors(404),
             summary="Price a quantity of an item")  # fmt: skip
async def pricing_calculate(body: PriceCalculateRequest, request: Request, _: Viewer) -> dict[str, Any]:
    """The seed's price calculation: base price, the store's promotion that day capped by the pricing rule in force
    (its largest discount and minimum margin), unit price after discount, total, savings and the rule ids applied."""
    sku = await resolve_sku(body.sku)
    return ok(request, await calculate(sku, body.quantity, body.store_id, body.on))


@router.post("/api/pricing/recommend", response_model=RecommendationAnswer, responses=shop_errors(404),
             summary="Suggest a discount from the sales history")  # fmt: skip
async def pricing_recommend(body: PriceRecommendRequest, request: Request, _: Viewer) -> dict[str, Any]:
    """A discount suggestion (0 when none pays) from the item's elasticity, recent sales and stock, within the
    pricing rule's and the policy's bounds, with the expected effect and the reason in words. Changes nothing."""
    sku = await resolve_sku(body.sku)
    return ok(request, await recommend(sku, body.store_id))


@router.post("/api/audit/compliance-check", response_model=ComplianceAnswer, responses=shop_errors(404),
             summary="Check a price change or a transaction")  # fmt: skip
async def compliance_check(body: ComplianceCheckRequest, request: Request, _: Viewer) -> dict[str, Any]:
    """``check`` is ``{"type": "price_change", "sku", "new_price", "old_price"?}`` or ``{"type": "transaction",
    "amount"}``; answers ``passed`` and each violation (``rule``, ``message``, ``limit``, ``value``) against the
    policy file's compliance limits and the pricing rule's minimum margin. Changes nothing."""
    spec = body.check
    if isinstance(spec, PriceChangeCheck):
        action: PriceChange | Transaction = PriceChange(await resolve_sku(spec.sku, "check.sku"), spec.new_price,
                                                        spec.old_price)  # fmt: skip
    else:
        action = Transaction(spec.amount)
    return ok(request, await check(action))
