"""Compliance checks and the audit trail of the shop endpoints.

:func:`check` runs the shop's compliance rules on one proposed action and reports every rule it breaks, with the
limit and the value: a price change larger than the policy's ``compliance.max_price_change_pct`` of the old price
(the old price defaults to the catalog's), a new price below the minimum margin of the pricing rule in force, and a
transaction amount above ``compliance.review_amount_usd``. The limits come from the policy file, the one source the
policy documents are rendered from (``policy:planning#compliance-checks``). It reads only.

:func:`record_audit` writes one ``audit_log`` row (task id, actor, endpoint, event, request, outcome), in the
caller's transaction when it passes a connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, Decimal
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from tools.deps import current
from tools.pricing import CENT, product, rule_in_force

log = logging.getLogger(__name__)

CITATION: Final = "policy:planning#compliance-checks"
EVENTS: Final = ("TASK_STARTED", "TASK_COMPLETED", "TASK_FAILED", "TASK_REPLAYED")


@dataclass(frozen=True)
class PriceChange:
    """A proposed new price for a sku; ``old_price`` None means the catalog's current price."""

    sku: int
    new_price: float
    old_price: float | None = None


@dataclass(frozen=True)
class Transaction:
    """A proposed transaction (a sale, refund or purchase) of ``amount`` dollars."""

    amount: float


def _violation(rule: str, message: str, limit: float, value: float) -> dict[str, Any]:
    return {"rule": rule, "message": message, "limit": limit, "value": value}


async def _price_change(action: PriceChange) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    limits = current().policy.compliance
    item = await product(action.sku)
    old = action.old_price if action.old_price is not None else float(item["unit_price"])
    change = round(limits.price_change_pct(old, action.new_price), 2)
    found = []
    if limits.price_change_too_large(old, action.new_price):
        limit = limits.max_price_change_pct
        message = (f"the price changes by {change:g} % (from {old:,.2f} to {action.new_price:,.2f}), more than the "
                   f"{limit:g} % allowed without a review")  # fmt: skip
        found.append(_violation("compliance.max_price_change_pct", message, limit, change))
    rule = await rule_in_force(action.sku, item["category"], date.today())
    if rule is not None:
        floor = (Decimal(item["unit_cost"]) / (1 - Decimal(rule["min_margin"]))).quantize(CENT, rounding=ROUND_CEILING)
        if Decimal(str(action.new_price)) < floor:
            found.append(_violation("pricing_rule.min_margin", f"{action.new_price:,.2f} is below {floor:,.2f}, the "
                                    f"lowest price that keeps the {float(rule['min_margin']) * 100:g} % minimum margin "
                                    f"of pricing rule {rule['rule_id']}", float(floor), action.new_price))  # fmt: skip
    facts = {"type": "price_change", "sku": action.sku, "old_price": old, "new_price": action.new_price,
             "change_percent": change, "pricing_rule_id": int(rule["rule_id"]) if rule else None}  # fmt: skip
    return found, facts


def _transaction(action: Transaction) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    limits = current().policy.compliance
    found = []
    if limits.needs_review(action.amount):
        found.append(_violation("compliance.review_amount_usd", f"the amount {action.amount:,.2f} is above "
                                f"{limits.review_amount_usd:,.2f}: a person must review it", limits.review_amount_usd,
                                action.amount))  # fmt: skip
    return found, {"type": "transaction", "amount": action.amount}


async def check(action: PriceChange | Transaction) -> dict[str, Any]:
    """``{passed, violations: [{rule, message, limit, value}], action, policy_version, citation}``; raises
    ``tools.inventory.NotFound`` for an unknown sku and ValueError for a price that is not a finite positive number."""
    if isinstance(action, PriceChange):
        violations, facts = await _price_change(action)
    else:
        violations, facts = _transaction(action)
    return {"passed": not violations, "violations": violations, "action": facts,
            "policy_version": current().policy.version, "citation": CITATION}  # fmt: skip


async def record_audit(
    task_id: str,
    actor: str,
    endpoint: str,
    event: str,
    request: dict[str, Any],
    outcome: dict[str, Any],
    conn: AsyncConnection[Any] | None = None,
) -> None:
    """One ``audit_log`` row; written with ``conn`` (the caller's transaction) when given, else on its own."""
    if event not in EVENTS:
        raise ValueError(f"event: unknown event {event!r}; allowed: {', '.join(EVENTS)}")
    query = ("INSERT INTO audit_log (task_id, actor, endpoint, event, request, outcome) "
             "VALUES (%s, %s, %s, %s, %s, %s)")  # fmt: skip
    params = (task_id, actor, endpoint, event, Jsonb(request), Jsonb(outcome))
    if conn is not None:
        await conn.execute(query, params)
    else:
        async with current().pool.connection() as own:
            await own.execute(query, params)
    log.info("audited", extra={"task_id": task_id, "endpoint": endpoint, "event": event, "actor": actor})
