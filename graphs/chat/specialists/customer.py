"""The customer specialist: a customer's profile, the top customers, and product recommendations for a customer.

Intents: ``customer.profile`` (RFM segment, lifetime value, churn risk: ``tools.customers.customer_profile``),
``customer.top`` (customers ranked by loyalty points, order frequency, spend or lifetime value, chosen from the
question's words: ``tools.customers.top_customers``) and ``customer.recommend`` (products with the reason each one
is suggested: ``tools.customers.recommendations``). Every answer ends with how its analytics were computed (the
tools' ``how``). Names are shown (the asker is an authenticated employee); emails never are.
"""

from __future__ import annotations

import re
from typing import Any, Final, cast

from graphs.chat.specialists.base import Answer, Ask, clarify, count, failed, money, names, pct, table
from ml.errors import InputError
from tools import customers

DEFAULT_TOP: Final = 5
RECOMMENDATIONS: Final = 5

_RANKINGS: Final[tuple[tuple[str, str, str], ...]] = (
    (r"\b(?:lifetime|clv|ltv)\b", "clv", "lifetime value"),
    (r"\b(?:valuable|value|spend\w*|spent|revenue|biggest|richest)\b", "monetary", "total spend"),
    (r"\b(?:frequent\w*|often|regular\w*|most orders)\b", "frequency", "number of orders"),
    (r"\b(?:loyal\w*|points?)\b", "loyalty_points", "loyalty points"),
)
"""(words, ``top_customers`` ranking, what it is in words), first match wins; loyalty points by default."""

_UNITS: Final = {"loyalty_points": "points", "clv": "USD", "monetary": "USD", "frequency": "orders"}


async def answer(ask: Ask) -> Answer:
    """The answer to a ``customer.*`` question."""
    if ask.intent == "customer.top":
        return await _top(ask)
    if ask.intent == "customer.recommend":
        return await _recommend(ask)
    return await _profile(ask)


def how(method: str) -> str:
    """``How: <method>.`` (the tool's own words on how it computed its figures)."""
    return f"How: {method.strip().rstrip('.')}."


# -- which customer ---------------------------------------------------------------------------------------------


def _as_number(value: Any) -> int | None:
    text = str(value).strip().lstrip("Cc")
    return int(text) if text.isdigit() else None


def _customer_id(ask: Ask) -> int | None:
    """The customer asked about: named in the question, else the previous answer's first customer."""
    if ask.entities.customer_numbers:
        return ask.entities.customer_numbers[0]
    previous = ask.previous.get("customer_ids") or []
    if isinstance(previous, (str, int)):
        previous = [previous]
    return next((n for n in map(_as_number, previous) if n is not None), None)


def _no_customer(customer_id: int) -> Answer:
    return Answer(f"There is no customer {customer_id}.", kind="unknown", focus={"customer_ids": [customer_id]})


# -- profile ------------------------------------------------------------------------------------------------------


async def _profile(ask: Ask) -> Answer:
    customer_id = _customer_id(ask)
    if customer_id is None:
        return clarify('Which customer do you mean? Give their customer id (for example "customer 17").')
    try:
        profile = await customers.customer_profile(customer_id)
    except Exception as exc:  # any tool failure becomes an error answer naming the tool
        return failed("customer_profile", exc)
    if profile is None:
        return _no_customer(customer_id)
    return Answer(_profile_text(profile), table=_profile_table(profile), tools=["customer_profile"],
                  focus={"customer_ids": [profile.customer_id]})  # fmt: skip


def _profile_text(p: customers.CustomerProfile) -> str:
    head = (f"Customer {p.customer_id}, {p.name} ({p.city}): {count(p.orders)} orders, {money(p.total_spent)} spent "
            f"(refunded orders excluded), {count(p.loyalty_points)} loyalty points.")  # fmt: skip
    if p.orders == 0:
        return f"{head} They have no orders yet, so there is no segment, lifetime value or churn estimate. " \
               f"{how(p.how)}"  # fmt: skip
    parts = [head]
    if p.last_order is not None and p.recency_days is not None:
        parts.append(f"Last order on {p.last_order} ({count(p.recency_days)} days before {p.as_of}).")
    if p.segment is not None:
        parts.append(f"RFM segment: {p.segment}.")
    if p.clv is not None and p.clv_horizon_days is not None:
        active = f", P(active) {pct(100 * p.p_active)}" if p.p_active is not None else ""
        parts.append(f"Expected value over the next {count(p.clv_horizon_days)} days: {money(p.clv)}{active}.")
    if p.churn_risk is not None:
        why = f" ({p.churn_reason})" if p.churn_reason else ""
        parts.append(f"Churn risk: {'yes' if p.churn_risk else 'no'}{why}.")
    parts.append(how(p.how))
    return " ".join(parts)


def _profile_table(p: customers.CustomerProfile) -> Any:
    rows: list[list[Any]] = [
        ["orders", p.orders], ["refunded orders", p.refunded_orders], ["total spent", round(p.total_spent, 2)],
        ["loyalty points", p.loyalty_points], ["last order", str(p.last_order) if p.last_order else None],
        ["recency (days)", p.recency_days], ["RFM segment", p.segment],
        ["lifetime value", round(p.clv, 2) if p.clv is not None else None], ["churn risk", p.churn_risk],
    ]  # fmt: skip
    return table(f"Customer {p.customer_id}", ["measure", "value"], rows)


# -- top customers -----------------------------------------------------------------------------------------------


def ranking(text: str) -> tuple[str, str]:
    """The ``top_customers`` ranking the question asks for and its words (loyalty points by default)."""
    lowered = text.lower()
    for pattern, by, words in _RANKINGS:
        if re.search(pattern, lowered):
            return by, words
    return "loyalty_points", "loyalty points"


def _value_text(by: str, value: float) -> str:
    if by in ("clv", "monetary"):
        return money(value)
    if by == "frequency":
        return f"{count(value)} orders"
    return f"{count(value)} points"


def _measure(row: customers.TopCustomer, measure: str) -> Any:
    """One ranking measure of a top customer (the ranked one is ``value``)."""
    if measure == row.by:
        return row.value
    return {"loyalty_points": row.loyalty_points, "clv": row.clv, "monetary": row.monetary,
            "frequency": row.frequency}[measure]  # fmt: skip


async def _top(ask: Ask) -> Answer:
    by, words = ranking(ask.text)
    limit = ask.entities.limit or DEFAULT_TOP
    try:
        rows = await customers.top_customers(by=cast(customers.RankBy, by), limit=min(limit, customers.MAX_LIMIT))
    except Exception as exc:
        return failed("top_customers", exc)
    if not rows:
        return Answer(f"There are no customers to rank by {words}.", tools=["top_customers"])
    listed = names([f"{r.name} (customer {r.customer_id}, {_value_text(by, r.value)})" for r in rows])
    text = f"The top {count(len(rows))} customers by {words}: {listed}. {how(rows[0].how)}"
    measures = [by, *(m for m in _UNITS if m != by)]
    grid = table(f"Top customers by {words}", ["rank", "customer_id", "name", *measures, "segment"],
                 [[r.rank, r.customer_id, r.name, *(_measure(r, m) for m in measures), r.segment] for r in rows],
                 units=dict(_UNITS))  # fmt: skip
    return Answer(text, table=grid, tools=["top_customers"], focus={"customer_ids": [r.customer_id for r in rows]})


# -- recommendations ---------------------------------------------------------------------------------------------


async def _recommend(ask: Ask) -> Answer:
    customer_id = _customer_id(ask)
    if customer_id is None:
        return clarify("Which customer should I recommend products for? Give their customer id.")
    try:
        recs = await customers.recommendations(customer_id, k=RECOMMENDATIONS)
    except InputError as exc:
        if exc.field == "customer_id":
            return _no_customer(customer_id)
        return failed("recommendations", exc)
    except Exception as exc:
        return failed("recommendations", exc)
    focus: dict[str, Any] = {"customer_ids": [customer_id], "skus": [r.sku for r in recs]}
    if not recs:
        return Answer(f"I have nothing to recommend to customer {customer_id}: there are no purchases to learn "
                      "from.", tools=["recommendations"], focus=focus)  # fmt: skip
    lines = [f"{i}. {r.name or f'sku {r.sku}'} (sku {r.sku}): {r.reason}" for i, r in enumerate(recs, 1)]
    text = f"For customer {customer_id} I would suggest:\n" + "\n".join(lines)
    if recs[0].how:
        text += f"\n{how(recs[0].how)}"
    grid = table(f"Recommendations for customer {customer_id}", ["sku", "name", "category", "score", "source",
                                                                   "reason"],
                 [[r.sku, r.name, r.category, round(r.score, 4), r.source, r.reason] for r in recs])  # fmt: skip
    return Answer(text, table=grid, tools=["recommendations"], focus=focus)
