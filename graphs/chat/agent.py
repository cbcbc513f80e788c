"""LLM mode of a chat specialist: a tool-using agent restricted to its own read tools.

Each tool of a specialist is one of its read operations with explicit arguments (``stock(store_ids, skus)``,
``sales_compare(store_ids, start, end, compare_start, compare_end)``...): it runs the specialist's own code on an
:class:`~graphs.chat.specialists.base.Ask` built from the arguments (over the entities the question was read with),
so the LLM sees exactly what the template answer would stand on. The model is shown a redacted view of each result
(emails, phones and addresses blanked, customer names dropped, at most :data:`MAX_ROWS` rows) and writes the
answer; its tokens stream (``messages-tuple``) from the final call.

The answer is kept only when it is grounded: it called a tool and every number it states is in the tool results or
the question (:func:`graphs.common.grounding.ungrounded`). Otherwise, and on any failure of the model (an error, a
tool it may not use, no answer after :data:`MAX_ROUNDS` rounds), the specialist's template answer stands, with the
reason in ``fallback``. Writes are never tools: starting a plan stays with the template path and its role check.
The sales agent may also run one read-only SELECT over the analyst views (:mod:`tools.sql_analyst`); the query
goes out with the answer.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from dataclasses import replace
from typing import Any, Final, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from graphs.chat.specialists import CHAT_TOOLS, ChatSpecialist
from graphs.chat.specialists.base import Answer, Ask, Table
from graphs.common.grounding import ungrounded
from ml.nlu import Catalog, Period, Unknown
from tools.redact import redact, redact_text
from tools.sql_analyst import MAX_QUERY_CHARS, VIEWS, SqlRefused, run_query
from tools.sql_analyst import MAX_ROWS as MAX_SQL_ROWS

log = logging.getLogger(__name__)

MAX_ROUNDS: Final = 4
"""Model calls per answer (tool rounds plus the final answer)."""
MAX_ROWS: Final = 30
"""Rows of a tool result the model is shown."""
TOOL_INTENTS: Final[dict[str, str]] = {
    "stock": "inventory.stock", "reorder_preview": "inventory.reorder", "price": "pricing.price",
    "price_recommendation": "pricing.recommend", "customer_profile": "customer.profile",
    "top_customers": "customer.top", "recommendations": "customer.recommend", "order_risk": "fulfillment.order_risk",
    "likely_late": "fulfillment.late_orders", "kpis": "fulfillment.kpis", "deviations": "fulfillment.deviations",
    "sales_summary": "sales.summary", "sales_compare": "sales.compare", "top_sellers": "sales.top_sellers",
    "category_shares": "sales.category_share", "plan_status": "planning.status", "search_policies": "knowledge.policy",
}  # fmt: skip
"""The read tools an agent may call, and the specialist operation each runs (``start_plan`` is a write: absent)."""
PII_COLUMNS: Final = frozenset({"name", "customer_name", "email", "phone", "address"})


class ToolArgs(BaseModel):
    """The arguments every chat tool takes; each is optional, and a missing one keeps what the question said."""

    model_config = ConfigDict(extra="forbid")

    store_ids: list[int] | None = Field(None, max_length=10, description="Store ids.")
    skus: list[int] | None = Field(None, max_length=20, description="Product skus.")
    category: str | None = Field(None, max_length=50, description="A product category.")
    order_id: str | None = Field(None, max_length=64, description="An order id such as ORD-000123.")
    customer_id: int | None = Field(None, ge=1, le=2**31 - 1, description="A customer id.")
    plan_id: str | None = Field(None, max_length=64, description="A plan id.")
    warehouse_block: Literal["A", "B", "C", "D", "E", "F"] | None = None
    mode: Literal["Flight", "Road", "Ship"] | None = Field(None, description="Shipping mode.")
    start: dt.date | None = Field(None, description="First day of the period (YYYY-MM-DD).")
    end: dt.date | None = Field(None, description="Last day of the period (YYYY-MM-DD).")
    compare_start: dt.date | None = Field(None, description="First day of the period compared with.")
    compare_end: dt.date | None = Field(None, description="Last day of the period compared with.")
    limit: int | None = Field(None, ge=1, le=50, description="How many rows (top N).")


class SqlArgs(BaseModel):
    """The SQL analyst's argument."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="One SELECT over the analyst views.")


SQL_TOOL: Final = "run_sql"
SQL_DESCRIPTION: Final = (
    "Run one read-only SELECT (PostgreSQL) when no other tool answers the question; at most "
    f"{MAX_SQL_ROWS} rows come back. Views: " + "; ".join(f"{name} ({cols})" for name, cols in VIEWS.items())
)


def _period(start: dt.date | None, end: dt.date | None) -> Period | None:
    if start is None or end is None or end < start:
        return None
    return Period(start, end, f"{start} to {end}")


def ask_from(base: Ask, args: ToolArgs, intent: str, catalog: Catalog) -> Ask:
    """The :class:`Ask` a tool call means: the question's entities with what the arguments name instead."""
    entities = replace(base.entities, unknown=(), ambiguous=())
    unknown: list[Unknown] = []
    if args.store_ids is not None:
        stores = [catalog.store(i) for i in args.store_ids]
        unknown += [Unknown("store", f"store {i}") for i, s in zip(args.store_ids, stores, strict=True) if s is None]
        entities = replace(entities, stores=tuple(s for s in stores if s is not None))
    if args.skus is not None:
        products = [catalog.product(i) for i in args.skus]
        unknown += [Unknown("sku", f"sku {i}") for i, p in zip(args.skus, products, strict=True) if p is None]
        entities = replace(entities, products=tuple(p for p in products if p is not None))
    changes: dict[str, Any] = {}
    if args.category is not None:
        changes["categories"] = (args.category,) if args.category in catalog.categories else ()
        if args.category not in catalog.categories:
            unknown.append(Unknown("category", args.category))
    for name, value in (("order_ids", args.order_id), ("plan_ids", args.plan_id),
                        ("warehouse_blocks", args.warehouse_block), ("modes", args.mode)):  # fmt: skip
        if value is not None:
            changes[name] = (value,)
    if args.customer_id is not None:
        changes["customer_ids"] = (str(args.customer_id),)
    if args.limit is not None:
        changes["limit"] = args.limit
    period = _period(args.start, args.end)
    if period is not None:
        changes["period"], changes["compare_period"] = period, _period(args.compare_start, args.compare_end)
    entities = replace(entities, **changes, unknown=tuple(unknown))
    return replace(base, intent=intent, entities=entities)


def model_view(answer: Answer) -> dict[str, Any]:
    """What the model is shown of a tool's answer: no customer names or contact data, at most MAX_ROWS rows."""
    view: dict[str, Any] = {"kind": answer.kind}
    table = answer.table
    customers = table is not None and "customer_id" in table.columns
    if not customers:
        view["text"] = redact_text(answer.text)
    if table is not None:
        keep = [i for i, c in enumerate(table.columns) if not (customers and c in PII_COLUMNS)]
        view["table"] = {"title": table.title, "columns": [table.columns[i] for i in keep],
                         "rows": [[row[i] for i in keep] for row in table.rows[:MAX_ROWS]], "units": table.units,
                         "period": table.period, "rows_total": len(table.rows)}  # fmt: skip
    if answer.citations:
        view["citations"] = [{k: c.get(k) for k in ("id", "title", "section", "text")} for c in answer.citations]
    return dict(redact(view))


def system_prompt(spec: ChatSpecialist, ask: Ask) -> str:
    return (
        f"You are the {spec.name} specialist of a retail operations assistant ({spec.description}). Answer the "
        "user's question by calling your tools, then reply in a few plain sentences. State every number exactly as "
        "a tool gave it and never compute or invent one; name ids as the tools name them; if a tool says it found "
        "nothing or failed, say so. You only read data: you cannot change prices, stock, orders or refunds. Cite "
        f"policy passages by their id in brackets. The data's today is {ask.as_of}. The question was read as: "
        f"{json.dumps(_hints(ask), default=str)}."
    )


def _hints(ask: Ask) -> dict[str, Any]:
    hints = {k: v for k, v in ask.entities.to_dict().items() if v and k not in ("unknown", "ambiguous")}
    for kind in ("stores", "products"):
        if kind in hints:
            hints[kind] = [{k: v for k, v in item.items() if k in ("store_id", "sku", "name")} for item in hints[kind]]
    return hints


@functools.cache
def tools_for(spec: ChatSpecialist) -> list[StructuredTool]:
    """The specialist's read tools, for binding (their code runs in :func:`agent_answer`, not here); built once per
    specialist and process."""

    def unused(**_: Any) -> str:  # the agent loop runs the calls itself, with the question's context
        raise NotImplementedError

    found = [StructuredTool.from_function(unused, name=name, description=CHAT_TOOLS[name], args_schema=ToolArgs)
             for name in spec.tools if name in TOOL_INTENTS]  # fmt: skip
    if SQL_TOOL in spec.tools:
        found.append(StructuredTool.from_function(unused, name=SQL_TOOL, description=SQL_DESCRIPTION,
                                                  args_schema=SqlArgs))  # fmt: skip
    return found


async def _run_sql(call: dict[str, Any]) -> tuple[Answer | None, str]:
    try:
        result = await run_query(SqlArgs.model_validate(call.get("args") or {}).query)
    except (ValueError, SqlRefused) as exc:  # told to the model, which may correct its query
        refused = Answer(f"The query was refused: {exc}", kind="error", tools=[SQL_TOOL])
        return refused, json.dumps({"kind": "error", "text": refused.text})
    grid = Table("query result", result.columns, result.rows)
    answer = Answer(f"{len(result.rows)} rows", table=grid, tools=[SQL_TOOL], sql=result.sql)
    return answer, json.dumps({**model_view(answer), "truncated": result.truncated}, default=str)


async def _run_tool(
    spec: ChatSpecialist, call: dict[str, Any], base: Ask, catalog: Catalog
) -> tuple[Answer | None, str]:
    """One tool call: the answer it gives and the text the model is shown (None and the error for a bad call)."""
    name = call.get("name", "")
    if name == SQL_TOOL and SQL_TOOL in spec.tools:
        return await _run_sql(call)
    if name not in spec.tools or name not in TOOL_INTENTS:
        return None, f"error: {name!r} is not one of the {spec.name} specialist's tools"
    try:
        args = ToolArgs.model_validate(call.get("args") or {})
    except ValueError as exc:
        return None, f"error: bad arguments: {exc}"
    answer = await spec.answer(ask_from(base, args, TOOL_INTENTS[name], catalog))
    return answer, json.dumps(model_view(answer), default=str)


async def agent_answer(spec: ChatSpecialist, ask: Ask, model: Any, catalog: Catalog) -> Answer:
    """The agent's answer to ``ask``, or the template's with the reason the agent's was not used."""
    try:
        return await _agent(spec, ask, model, catalog)
    except _Fallback as why:
        reason = str(why)
    except Exception as exc:  # the model or its server failed: the template answers
        log.warning("chat agent failed", extra={"specialist": spec.name, "error": str(exc)})
        reason = f"the model failed ({type(exc).__name__})"
    return replace(await spec.answer(ask), fallback=reason)


class _Fallback(Exception):
    """The agent's answer cannot be used; the message says why."""


async def _agent(spec: ChatSpecialist, ask: Ask, model: Any, catalog: Catalog) -> Answer:
    bound = model.bind_tools(tools_for(spec))
    messages: list[BaseMessage] = [SystemMessage(system_prompt(spec, ask)), HumanMessage(redact_text(ask.text))]
    results: list[Answer] = []
    shown: list[str] = []
    tools: list[str] = []
    for _ in range(MAX_ROUNDS):
        reply: AIMessage = await bound.ainvoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            return _final(reply, results, shown, tools, ask)
        for call in reply.tool_calls:
            answer, seen = await _run_tool(spec, dict(call), ask, catalog)
            if answer is None:
                raise _Fallback(seen.removeprefix("error: "))
            results.append(answer)
            shown.append(seen)
            tools += [t for t in answer.tools if t not in tools]
            messages.append(ToolMessage(seen, tool_call_id=call.get("id") or ""))
    raise _Fallback(f"no answer after {MAX_ROUNDS} model calls")


def _final(reply: AIMessage, results: list[Answer], shown: list[str], tools: list[str], ask: Ask) -> Answer:
    text = reply.content if isinstance(reply.content, str) else " ".join(
        str(b.get("text", "")) for b in reply.content if isinstance(b, dict))  # fmt: skip
    text = text.strip()
    if not text:
        raise _Fallback("the model gave an empty answer")
    if not results:
        raise _Fallback("the model answered without calling a tool")
    invented = ungrounded(text, [shown, ask.text, str(ask.as_of)])
    if invented:
        raise _Fallback(f"the model stated numbers no tool gave: {', '.join(invented[:5])}")
    last = results[-1]
    if last.sql:
        text += f"\n\nQuery run: {last.sql}"
    citations = [c for r in results for c in r.citations]
    return Answer(text, kind=last.kind, table=last.table, citations=citations, tools=tools, focus=last.focus,
                  sql=last.sql, by="llm", message_id=reply.id)  # fmt: skip
