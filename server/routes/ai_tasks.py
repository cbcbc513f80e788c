"""The shop assistant's orchestrator endpoints (the AI Shop Assistant seed's contract), over the ``chat`` graph.

``POST /api/ai/query`` turns the UI's request into a question for the chat assistant and waits for the answer:
``ui_payload`` is ``{"action": "ask", "question"}``, asked as it is, or a structured request of the seed's pages
(Inventory ``query`` / ``reorder``, Pricing ``calculate`` / ``recommend``, Customer ``query_customer``), phrased as
the question it means. ``session_id`` keeps a conversation: the same key and session continue one chat thread (its id
is derived from both, so two keys never share a thread). The task id is the run's id; the task is audited in
``audit_log`` (``TASK_STARTED``, then ``TASK_COMPLETED`` or ``TASK_FAILED``, with the answer's intent, kind and
tools), which ``GET /api/ai/task/{task_id}`` and ``GET /api/ai/audit`` read. A key sees its own tasks; an admin
sees every key's.

Answers are the seed's ``{"success": true, "task_id", "data": {"status": "success", "data": {...}}, "timestamp"}``;
errors its envelope (:class:`server.routes.shop.ShopRoute`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Path, Query, Request
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field

from ml.nlu.entities import MAX_TEXT_CHARS
from rag.schemas import JSON_INTEGER, NON_BLANK
from server.auth import ROLE_RANK, Principal, Viewer
from server.errors import ApiError
from server.routes.chat import ASSISTANT, DURABILITY
from server.routes.customer_service import CustomerId
from server.routes.shop import ShopRoute, Sku, StoreId, shop_errors, task_id_of
from server.runtime.deps import RuntimeDep
from server.runtime.schemas import RunCreate
from tools.compliance import record_audit
from tools.deps import current

router = APIRouter(tags=["shop"], route_class=ShopRoute)

ENDPOINT: Final = "/api/ai/query"
_SESSIONS: Final = uuid.UUID("6f1c8a52-4a8e-4f0b-9a57-0d6c2b1e9d33")
"""Namespace of the chat thread ids derived from (key name, session id)."""

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NON_BLANK)]
Label = Annotated[str, Field(min_length=1, max_length=100, pattern=NON_BLANK)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AskPayload(_Payload):
    """A question in words."""

    action: Literal["ask"]
    question: Text


class StockPayload(_Payload):
    """The Inventory page's query: an item's stock (at one store, or every store)."""

    action: Literal["query"]
    sku: Sku
    store_id: StoreId | None = None


class ReorderPayload(_Payload):
    """The Inventory page's reorder: what a store should reorder."""

    action: Literal["reorder"]
    store_id: StoreId


class PricePayload(_Payload):
    """The Pricing page's calculate: the price of a quantity of an item."""

    action: Literal["calculate"]
    sku: Sku
    quantity: Annotated[int, Field(ge=1, le=10**6), JSON_INTEGER] = 1
    store_id: StoreId | None = None


class DiscountPayload(_Payload):
    """The Pricing page's recommend: a discount suggestion for an item."""

    action: Literal["recommend"]
    sku: Sku
    store_id: StoreId | None = None


class CustomerPayload(_Payload):
    """The Customer page's query: a customer's profile."""

    action: Literal["query_customer"]
    customer_id: CustomerId


UiPayload = Annotated[AskPayload | StockPayload | ReorderPayload | PricePayload | DiscountPayload | CustomerPayload,
                      Field(discriminator="action")]  # fmt: skip


class AiQueryRequest(BaseModel):
    """The seed's request: who asks, from which page, and the UI's payload."""

    model_config = ConfigDict(extra="forbid")

    user_id: Label | None = None
    session_id: Label | None = Field(None, description="Continue this conversation (per API key).")
    page: Label | None = None
    action_type: Label | None = None
    ui_payload: UiPayload = Field(description="What is asked: selected by ``action``.")


def question_of(payload: AskPayload | StockPayload | ReorderPayload | PricePayload | DiscountPayload |
                CustomerPayload) -> str:  # fmt: skip
    """The question a payload asks."""
    store = getattr(payload, "store_id", None)
    where = f" at store {store}" if store is not None else ""
    match payload:
        case AskPayload():
            return payload.question
        case StockPayload():
            return f"How many of sku {payload.sku} do we have{where}?"
        case ReorderPayload():
            return f"What should I reorder at store {payload.store_id}?"
        case PricePayload():
            return f"What is the price of {payload.quantity} units of sku {payload.sku}{where}?"
        case DiscountPayload():
            return f"What discount do you recommend for sku {payload.sku}{where}?"
        case CustomerPayload():
            return f"Show me the profile of customer {payload.customer_id}"


def thread_of(principal: Principal, session_id: str | None) -> str:
    """The chat thread of a key's session (a new one without a session)."""
    if session_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_SESSIONS, f"{principal.id}\x00{session_id}"))


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _outcome(values: dict[str, Any]) -> dict[str, Any]:
    answer, seen = values.get("answer") or {}, values.get("understanding") or {}
    return {"answer": answer.get("text"), "kind": answer.get("kind"), "intent": seen.get("intent"),
            "table": answer.get("table"), "citations": answer.get("citations") or [],
            "tools": answer.get("tools") or []}  # fmt: skip


@router.post("/api/ai/query", summary="Ask the shop assistant (into the chat graph)", responses=shop_errors(409, 422))
async def ai_query(body: AiQueryRequest, request: Request, runtime: RuntimeDep, principal: Viewer) -> dict[str, Any]:
    """Asks the chat assistant and answers with its reply: the text, the intent, the table and citations behind
    it, and the ``thread_id`` of the conversation. The task is audited under its ``task_id`` (the run's id)."""
    question = question_of(body.ui_payload)
    thread_id = thread_of(principal, body.session_id)
    run_body = RunCreate(assistant_id=ASSISTANT, input={"messages": [{"role": "user", "content": question}]},
                         if_not_exists="create", metadata={"started_from": ENDPOINT, "page": body.page},
                         durability=DURABILITY)  # fmt: skip
    run = await runtime.manager.start(thread_id, run_body, principal, "wait")
    task_id = request.state.shop_task_id = run.run_id
    asked = {**body.model_dump(mode="json", exclude_none=True), "question": question, "thread_id": thread_id}
    await record_audit(task_id, principal.id, ENDPOINT, "TASK_STARTED", asked, {})
    result = await runtime.manager.result(thread_id, run.run_id)
    if result.get("__error__"):
        failure = {"error": str((result["__error__"] or {}).get("message") or "the chat run failed")}
        await record_audit(task_id, principal.id, ENDPOINT, "TASK_FAILED", asked, failure)
        raise ApiError(500, "internal_error", f"the chat assistant failed: {failure['error']}")
    outcome = _outcome(result)
    await record_audit(task_id, principal.id, ENDPOINT, "TASK_COMPLETED", asked, outcome)
    data = {**outcome, "question": question, "thread_id": thread_id}
    return {"success": True, "task_id": task_id_of(request), "data": {"status": "success", "data": data},
            "timestamp": _timestamp()}  # fmt: skip


def _sees_all(principal: Principal) -> bool:
    return ROLE_RANK[principal.role] >= ROLE_RANK["admin"]


def _audit_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"audit_id": row["audit_id"], "task_id": str(row["task_id"]), "actor": row["actor"],
            "endpoint": row["endpoint"], "event": row["event"], "state": {"inputs": row["request"],
            "outputs": row["outcome"]}, "timestamp": row["created_at"].isoformat()}  # fmt: skip


_STATUS: Final = {"TASK_STARTED": "in_progress", "TASK_COMPLETED": "completed", "TASK_FAILED": "failed",
                  "TASK_REPLAYED": "completed"}  # fmt: skip


@router.get("/api/ai/task/{task_id}", summary="A shop assistant task's status", responses=shop_errors(404, 422))
async def ai_task(task_id: Annotated[uuid.UUID, Path(description="The task id an answer gave.")],
                  request: Request, principal: Viewer) -> dict[str, Any]:  # fmt: skip
    """The task's status (``in_progress``, ``completed``, ``failed``), inputs, outputs and its audit records. 404
    for a task that is not on record, or not the caller's (unless the caller is an admin)."""
    request.state.shop_task_id = str(task_id)
    async with current().pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM audit_log WHERE task_id = %s AND (%s OR actor = %s) ORDER BY audit_id",
                                 (task_id, _sees_all(principal), principal.id))  # fmt: skip
        rows = [dict(r) for r in await cur.fetchall()]
    if not rows:
        raise ApiError(404, "data_not_found", f"task_id: no task {task_id} on record for this key")
    last = rows[-1]
    data = {"task_id": str(task_id), "status": _STATUS[last["event"]], "endpoint": last["endpoint"],
            "inputs": rows[0]["request"], "outputs": last["outcome"], "created_at": rows[0]["created_at"].isoformat(),
            "updated_at": last["created_at"].isoformat(), "events": [_audit_row(r) for r in rows]}  # fmt: skip
    return {"status": "success", "task_id": str(task_id), "data": data}


_AUDIT_WHERE: Final = sql.SQL(
    "WHERE (%(all)s OR actor = %(actor)s) AND (%(task)s::uuid IS NULL OR task_id = %(task)s) "
    "AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s)"
)


@router.get("/api/ai/audit", summary="Audit records of the shop endpoints", responses=shop_errors(422))
async def ai_audit(
    principal: Viewer,
    task_id: Annotated[uuid.UUID | None, Query(description="Only this task's records.")] = None,
    endpoint: Annotated[str | None, Query(max_length=100, description="Only this endpoint's records.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> dict[str, Any]:
    """The audit records (the seed's ``AuditRecord``s) newest first, with ``total`` for paging. A key sees its own
    records; an admin sees every key's."""
    params = {"all": _sees_all(principal), "actor": principal.id, "task": task_id, "endpoint": endpoint}
    async with current().pool.connection() as conn:
        cur = await conn.execute(sql.SQL("SELECT count(*) AS n FROM audit_log ") + _AUDIT_WHERE, params)
        total = (await cur.fetchone())["n"]
        cur = await conn.execute(sql.SQL("SELECT * FROM audit_log ") + _AUDIT_WHERE + sql.SQL(
            " ORDER BY audit_id DESC LIMIT %(limit)s OFFSET %(offset)s"), {**params, "limit": limit, "offset": offset})
        rows = [_audit_row(dict(r)) for r in await cur.fetchall()]
    return {"status": "success", "task_id": None, "data": {"records": rows, "total": total, "limit": limit,
                                                            "offset": offset}}  # fmt: skip
