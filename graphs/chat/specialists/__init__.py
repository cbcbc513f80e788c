"""The chat's specialists, in one list: who answers which intents, with which read tools.

Adding a specialist is one :class:`ChatSpecialist` entry here plus its module (an ``answer(ask) -> Answer``
coroutine over its tools). :data:`REGISTRY` validates the list with the common machinery
(:class:`graphs.common.specialists.SpecialistRegistry`: names, tools, no collision with the graph's own nodes)
when the graph module is imported, and :data:`BY_INTENT` refuses an intent claimed twice or left unclaimed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from graphs.chat.specialists import customer, fulfillment, inventory, knowledge, planning, pricing, sales
from graphs.chat.specialists.base import Answer, Ask
from graphs.common.specialists import Specialist, SpecialistError, SpecialistRegistry, SpecialistResult
from ml.nlu import INTENTS

CHAT_NODES: Final = ("understand", "respond")
"""The graph's own nodes (a specialist may not take their names)."""

DIRECT_INTENTS: Final = ("chat.greeting", "chat.out_of_scope", "chat.write_request")
"""Intents answered by ``respond`` itself, with no specialist."""

CHAT_TOOLS: Final[dict[str, str]] = {
    "stock": "tools.inventory.stock: on hand, on order, days of cover and reorder flag per store and sku",
    "reorder_preview": "tools.planning.reorder_preview: what the inventory planner would order at a store",
    "price": "tools.pricing.calculate: the price of a quantity of an item on a day, with its discount and rule",
    "price_recommendation": "tools.pricing.recommend: a discount suggestion from the item's elasticity",
    "customer_profile": "tools.customers.customer_profile: RFM, segment, lifetime value and churn risk",
    "top_customers": "tools.customers.top_customers: customers ranked by value, frequency or loyalty",
    "recommendations": "tools.customers.recommendations: products for a customer, each with its reason",
    "order_risk": "tools.orders.require_order: an order's facts, prediction and deviation",
    "likely_late": "tools.risk.likely_late: open orders most likely late, by warehouse block and mode",
    "kpis": "tools.kpis.dashboard: segment risk and on-time rates over the KPI window",
    "deviations": "tools.deviations.list_deviations: deviations with filters",
    "sales_summary": "tools.sales.summary: units and revenue over a period",
    "sales_compare": "tools.sales.compare: a period against another",
    "top_sellers": "tools.sales.top_sellers: best sellers over a period",
    "category_shares": "tools.sales.category_shares: each category's share of sales over a period",
    "plan_status": "tools.planning.plan_rows: plans and their status",
    "start_plan": "tools.deps.plan_starter: start a plan that waits for approval",
    "search_policies": "tools.knowledge.search_policies: policy passages with their citation ids",
    "run_sql": "tools.sql_analyst.run_query: one read-only SELECT over the analyst views (LLM mode only)",
}
"""Every read tool a chat specialist may call (name -> what it is); the LLM policies bind these by name."""


@dataclass(frozen=True)
class ChatSpecialist:
    """One specialist of the chat graph."""

    name: str
    description: str
    intents: tuple[str, ...]
    tools: tuple[str, ...]
    answer: Callable[[Ask], Awaitable[Answer]]


SPECIALISTS: Final = (
    ChatSpecialist("inventory", "stock levels at stores and what to reorder", ("inventory.stock", "inventory.reorder"),
                   ("stock", "reorder_preview"), inventory.answer),
    ChatSpecialist("pricing", "an item's price and discount, and discount suggestions",
                   ("pricing.price", "pricing.recommend"), ("price", "price_recommendation"), pricing.answer),
    ChatSpecialist("customer", "customer profiles and segments, top customers, recommendations for a customer",
                   ("customer.profile", "customer.top", "customer.recommend"),
                   ("customer_profile", "top_customers", "recommendations"), customer.answer),
    ChatSpecialist("fulfillment", "order delay risk and why, orders likely late, deviations, fulfillment KPIs",
                   ("fulfillment.order_risk", "fulfillment.late_orders", "fulfillment.kpis",
                    "fulfillment.deviations"), ("order_risk", "likely_late", "kpis", "deviations"), fulfillment.answer),
    ChatSpecialist("sales", "sales over periods, comparisons, top sellers and category shares",
                   ("sales.summary", "sales.compare", "sales.top_sellers", "sales.category_share"),
                   ("sales_summary", "sales_compare", "top_sellers", "category_shares", "run_sql"), sales.answer),
    ChatSpecialist("planning", "start a store plan (it waits for approval) and plan status",
                   ("planning.start", "planning.status"), ("start_plan", "plan_status"), planning.answer),
    ChatSpecialist("knowledge", "policy questions, answered with citations", ("knowledge.policy",),
                   ("search_policies",), knowledge.answer),
)  # fmt: skip


def _act(spec: ChatSpecialist) -> Callable[[Mapping[str, Any]], Awaitable[SpecialistResult]]:
    async def act(state: Mapping[str, Any]) -> SpecialistResult:
        reply = await spec.answer(state["ask"])
        return SpecialistResult(summary=reply.text, tools_used=list(reply.tools))

    return act


REGISTRY: Final = SpecialistRegistry(
    [Specialist(s.name, s.description, s.tools, _act(s)) for s in SPECIALISTS],
    known_tools=CHAT_TOOLS, reserved=CHAT_NODES,
)


def _by_intent() -> dict[str, ChatSpecialist]:
    owners: dict[str, ChatSpecialist] = {}
    for spec in SPECIALISTS:
        for intent in spec.intents:
            if intent not in INTENTS:
                raise SpecialistError(f"specialist {spec.name!r} claims intent {intent!r}, which the classifier does "
                                      f"not know; use one of {', '.join(INTENTS)}")  # fmt: skip
            if intent in owners:
                raise SpecialistError(f"intent {intent!r} is claimed by {owners[intent].name!r} and {spec.name!r}; "
                                      "give it to one of them")  # fmt: skip
            owners[intent] = spec
    orphans = [i for i in INTENTS if i not in owners and i not in DIRECT_INTENTS]
    if orphans:
        raise SpecialistError(f"no specialist answers intent(s) {', '.join(orphans)}; add them to a specialist")
    return owners


BY_INTENT: Final = _by_intent()
"""Intent -> the specialist that answers it."""
