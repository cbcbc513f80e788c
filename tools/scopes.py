"""Which specialist may use which tool, and the LangChain tools an LLM policy binds for each specialist.

``TOOL_SCOPES`` maps each specialist to its tool names: the read tools it may call while deciding, and the
actions it may propose (``tools.actions.ACTION_SCOPES``; proposals go through the guardrails and the executor,
never straight to a tool). :func:`read_tools` returns the read tools of a scope as ``StructuredTool`` objects whose
results are JSON-ready dicts with personal data redacted (``tools.redact``); a bad argument (an unknown order, an
empty query) comes back to the model as the tool's error message. Every scoped name is checked at import.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any, Final

import numpy as np
from langchain_core.tools import StructuredTool, ToolException

from rag.service import KnowledgeBaseError
from tools import escalation, knowledge, messaging, payment, shipment
from tools.actions import ACTION_NAMES, ACTION_SCOPES, SPECIALISTS
from tools.orders import customer_history, require_order, utc_now
from tools.redact import redact

COMMON_READS: Final = ("get_order", "search_policies", "search_cases")
READ_SCOPES: Final[dict[str, tuple[str, ...]]] = {
    "shipment": (*COMMON_READS, "check_carrier_status", "upgrade_options", "check_warehouse"),
    "customer": (*COMMON_READS, "customer_history", "draft_message"),
    "payment": (*COMMON_READS, "customer_history", "check_refund_eligibility"),
    "escalation": (*COMMON_READS, "customer_history", "recommend_escalation"),
}
TOOL_SCOPES: Final[dict[str, tuple[str, ...]]] = {
    name: (*READ_SCOPES[name], *sorted(ACTION_SCOPES[name])) for name in SPECIALISTS
}
"""Specialist -> the names of the tools it may use (reads, then the actions it may propose)."""
SCOPES: Final = TOOL_SCOPES
"""The same mapping under its short name."""


def jsonable(value: Any) -> Any:
    """Dataclasses, dates, tuples and numpy scalars as plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


async def _get_order(order_id: str) -> Any:
    """The order's facts: mode, warehouse, weight, value and amount paid, dates, days late, payment and order status,
    and its delay score when scored."""
    return await require_order(order_id)


async def _customer_history(order_id: str) -> Any:
    """What was already done for the order's customer and this order: apologies in the window, compensations
    paid, upgrades booked, previous deviations, care calls."""
    facts = await require_order(order_id)
    return await customer_history(facts.customer_ref, order_id, now=utc_now())


async def _check_carrier_status(order_id: str) -> Any:
    """The order's carrier, its transit time and on-time target, days late and whether an SLA claim may be filed."""
    return await shipment.check_carrier_status(order_id)


async def _upgrade_options(order_id: str) -> Any:
    """The shipping upgrades the policy allows for the order now, each with its fee and the least role to book it."""
    return await shipment.upgrade_options(order_id)


async def _check_warehouse(order_id: str) -> Any:
    """The order's warehouse block: processing SLA, backlog in hours and whether a transfer is open."""
    return await shipment.check_warehouse(order_id)


async def _draft_message(order_id: str, severity: str, kind: str, tone: str = "neutral") -> Any:
    """A customer message from the approved templates. kind: delay_notice, apology, sms_update, status_update,
    upgrade_notice, refund_confirmation, store_credit_offer; tone: neutral, warm, formal."""
    return await messaging.draft_message(order_id, severity, kind, tone)


async def _check_refund_eligibility(order_id: str) -> Any:
    """Whether the order may be compensated, its refund tier, the largest refund and store credit, and why not."""
    return await payment.check_refund_eligibility(order_id)


async def _recommend_escalation(order_id: str) -> Any:
    """The escalation priority, response targets and team the policy routes the order to."""
    return await escalation.recommend_escalation(order_id)


async def _search_policies(query: str, category: str | None = None, k: int = 4) -> Any:
    """Policy passages for a question, each with the citation id to cite (category: refunds, shipping,
    communication, escalation, carrier_slas, warehouse_slas, email_templates)."""
    return await knowledge.search_policies(query, category, k)


async def _search_cases(query: str, k: int = 3) -> Any:
    """Past resolutions of similar deviations (for precedent, never cited as policy)."""
    return await knowledge.search_cases(query, k)


READ_TOOLS: Final[dict[str, Callable[..., Awaitable[Any]]]] = {
    "get_order": _get_order,
    "customer_history": _customer_history,
    "check_carrier_status": _check_carrier_status,
    "upgrade_options": _upgrade_options,
    "check_warehouse": _check_warehouse,
    "draft_message": _draft_message,
    "check_refund_eligibility": _check_refund_eligibility,
    "recommend_escalation": _recommend_escalation,
    "search_policies": _search_policies,
    "search_cases": _search_cases,
}


def _validate() -> None:
    known = set(READ_TOOLS) | set(ACTION_NAMES)
    for specialist, names in TOOL_SCOPES.items():
        unknown = sorted(set(names) - known)
        if unknown:
            raise RuntimeError(f"tools.scopes: {specialist} names unknown tool(s): {', '.join(unknown)}")
    unused = sorted(set(READ_TOOLS) - {n for names in READ_SCOPES.values() for n in names})
    if unused:
        raise RuntimeError(f"tools.scopes: read tool(s) in no scope: {', '.join(unused)}")


_validate()


def _wrap(name: str, function: Callable[..., Awaitable[Any]]) -> StructuredTool:
    """A LangChain tool over ``function`` (its signature is the schema) returning redacted JSON."""

    @functools.wraps(function)
    async def run(*args: Any, **kwargs: Any) -> Any:
        try:
            result = await function(*args, **kwargs)
        except (LookupError, ValueError, KnowledgeBaseError) as exc:
            raise ToolException(str(exc)) from exc
        return redact(jsonable(result))

    return StructuredTool.from_function(
        coroutine=run, name=name, description=" ".join((function.__doc__ or name).split()), handle_tool_error=True
    )


def read_tools(specialist: str) -> list[StructuredTool]:
    """The read tools of ``specialist``'s scope, ready to bind to a chat model."""
    if specialist not in READ_SCOPES:
        raise ValueError(f"specialist: {specialist!r}; allowed: {', '.join(READ_SCOPES)}")
    return [_wrap(name, READ_TOOLS[name]) for name in READ_SCOPES[specialist]]


def may_use(specialist: str, tool_name: str) -> bool:
    """Whether ``specialist`` may use (read) or propose (action) ``tool_name``."""
    return tool_name in TOOL_SCOPES.get(specialist, ())
