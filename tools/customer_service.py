"""Customer service for the shop assistant: a customer's profile, support tickets and loyalty points.

:func:`profile` is the customer's row with their order figures and the analytics of :mod:`tools.customers` (RFM,
segment, lifetime value, churn risk). ``total_purchases`` sums ``order_value`` over the customer's orders not
refunded, as :mod:`tools.customers` counts value.

:func:`open_ticket` writes one ``tickets`` row for a customer (migration 0011 adds ``customer_id``, ``subject`` and
``description``), attributed to the caller, once per idempotency key (:func:`tools.ledger.insert_once`): a retry
with the same key and the same request finds the first ticket (``created`` is False); the key reused for another
request is refused with :class:`IdempotencyKeyReused`.

:func:`change_points` earns or redeems loyalty points. **No lost write:** it runs in one transaction that first
locks the customer's row (``SELECT ... FOR UPDATE``), so concurrent changes of one customer queue on that lock and
each starts from the balance the previous one committed; a redeem beyond the balance is refused with
:class:`InsufficientPoints` and writes nothing. Every change writes one ``loyalty_transactions`` row (before,
after, delta, reason, actor) in the same transaction, under a unique idempotency key (the client's, or one per
request), with the same replay and reuse rules as tickets.

Lookups that fail raise :class:`NotFound` naming a few close customer ids; the HTTP edge maps errors to statuses.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

from psycopg import AsyncConnection

from tools.customers import analytics, customer_profile, frame_value
from tools.deps import current
from tools.inventory import IdempotencyKeyReused, NotFound, ShopError
from tools.ledger import Attribution, insert_once

log = logging.getLogger(__name__)

SUGGESTIONS: Final = 5
"""Close customer ids named when a customer is unknown."""
MAX_POINTS: Final = 1_000_000
"""Most points one earn or redeem may move."""
MAX_BALANCE: Final = 2_000_000_000
"""Largest balance an earn may leave (``customers.loyalty_points`` is a 32-bit integer)."""
TICKET_TEAM: Final = "customer_care"
TICKET_AGENT: Final = "customer_service"
TICKET_RULE: Final = "customer_service#support-ticket"
PRIORITIES: Final = ("low", "medium", "high")
RECENT: Final = 10
"""Latest loyalty transactions a balance lists."""

Kind = Literal["earn", "redeem"]


# -- errors ---------------------------------------------------------------------------------------------------


class InsufficientPoints(ShopError):
    """A redeem of more points than the customer's balance (``details`` has both numbers)."""

    code = "INSUFFICIENT_POINTS"


class InvalidLoyaltyChange(ShopError):
    """An earn or redeem that is malformed or breaks a bound."""


# -- customers ------------------------------------------------------------------------------------------------


def customer_number(value: int | str) -> int | None:
    """The integer id ``value`` names (``123``, ``"123"``, ``"C00123"``, ``"CUST-123"`` -> 123), else None."""
    if isinstance(value, int):
        return value if 1 <= value <= 2**31 - 1 else None
    match = re.fullmatch(r"\s*(?:[A-Za-z]{1,8}[-_]?)?([0-9]{1,10})\s*", value)
    if match is None:
        return None
    number = int(match.group(1))
    return number if 1 <= number <= 2**31 - 1 else None


async def require_customer(value: int | str, field: str = "customer_id") -> int:
    """The id of the customer ``value`` names; :class:`NotFound` naming the closest ids when there is none."""
    number = customer_number(value)
    async with current().pool.connection() as conn:
        if number is not None:
            cur = await conn.execute("SELECT customer_id FROM customers WHERE customer_id = %s", (number,))
            if await cur.fetchone() is not None:
                return number
        cur = await conn.execute("SELECT customer_id FROM customers ORDER BY abs(customer_id::bigint - %s), "
                                 "customer_id LIMIT %s", (number or 0, SUGGESTIONS))  # fmt: skip
        close = sorted(int(r["customer_id"]) for r in await cur.fetchall())
    raise NotFound(field, f"customer {value} not found",
                   {"customer_id": value, "available_customer_ids": close})  # fmt: skip


# -- profile --------------------------------------------------------------------------------------------------


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def profile(customer_id: int) -> dict[str, Any]:
    """The customer's row, order figures and analytics; :class:`NotFound` when there is no such customer."""
    found = await customer_profile(customer_id)
    if found is None:
        await require_customer(customer_id)  # raises NotFound with close ids
        raise NotFound("customer_id", f"customer {customer_id} not found", {"customer_id": customer_id})
    data = await analytics()
    rfm = None
    if customer_id in data.rfm.index:
        rfm = {name: frame_value(data.rfm, customer_id, name) for name in ("recency_days", "frequency", "monetary")}
    return {
        "customer_id": found.customer_id, "name": found.name, "email": found.email, "city": found.city,
        "segment": found.crm_segment, "loyalty_points": found.loyalty_points,
        "member_since": found.created_at.isoformat(), "prior_purchases": found.prior_purchases,
        "rating": found.rating, "orders": found.orders, "refunded_orders": found.refunded_orders,
        "total_purchases": round(found.total_spent, 2), "first_order": _iso(found.first_order),
        "last_order": _iso(found.last_order), "lifetime_value": found.clv,
        "analytics": {
            "as_of": found.as_of.isoformat(), "rfm": rfm, "rfm_segment": found.segment,
            "lifetime_value": found.clv, "clv_horizon_days": found.clv_horizon_days,
            "expected_purchases": found.expected_purchases, "p_active": found.p_active,
            "churn_risk": found.churn_risk, "churn_score": found.churn_score, "churn_reason": found.churn_reason,
            "how": found.how,
        },
    }  # fmt: skip


# -- support tickets ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    """One ``tickets`` row opened for a customer; ``created`` is False when a retry found it."""

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
    created: bool

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


TicketWrite = Callable[[AsyncConnection[Any], Ticket], Awaitable[None]]
"""Runs in the ticket's transaction once its row is written (e.g. the audit trail's row)."""


def _ticket(row: dict[str, Any], created: bool) -> Ticket:
    return Ticket(
        ticket_id=int(row["ticket_id"]), idempotency_key=row["idempotency_key"], customer_id=int(row["customer_id"]),
        order_id=row["order_id"], subject=row["subject"], description=row["description"], priority=row["priority"],
        status=row["status"], team=row["team"], actor=row["actor"], created_at=row["created_at"].isoformat(),
        created=created,
    )  # fmt: skip


async def _require_order_of(order_id: str, customer_id: int) -> None:
    async with current().pool.connection() as conn:
        cur = await conn.execute("SELECT customer_id FROM orders WHERE order_id = %s", (order_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound("order_id", f"order {order_id} not found", {"order_id": order_id})
    if int(row["customer_id"]) != customer_id:
        raise ShopError("order_id", f"order {order_id} is not an order of customer {customer_id}",
                        {"order_id": order_id, "customer_id": customer_id})  # fmt: skip


async def open_ticket(
    customer_id: int,
    *,
    subject: str,
    description: str,
    priority: str = "medium",
    order_id: str | None = None,
    actor: str,
    idempotency_key: str | None = None,
    task_id: str | None = None,
    after_write: TicketWrite | None = None,
) -> Ticket:
    """Open a support ticket for the customer (and their order ``order_id``), once per idempotency key.

    Raises :class:`NotFound` (no such customer or order), :class:`ShopError` (bad input, an order of another
    customer) and :class:`IdempotencyKeyReused` (the key opened another ticket, or was used by another ledger
    write). ``after_write`` runs in the insert's transaction, only for a new ticket.
    """
    if priority not in PRIORITIES:
        raise ShopError("priority", f"must be one of {', '.join(PRIORITIES)}, got {priority!r}")
    if not actor.strip():
        raise ShopError("actor", "must name who opens the ticket")
    subject, description = subject.strip(), description.strip()
    if not subject or not description:
        raise ShopError("subject" if not subject else "description", "must have something besides white space")
    await require_customer(customer_id)
    if order_id is not None:
        await _require_order_of(order_id, customer_id)
    task = task_id or str(uuid.uuid4())
    key = idempotency_key or f"task:{task}"
    asked = {"customer_id": customer_id, "order_id": order_id, "subject": subject, "description": description,
             "priority": priority}  # fmt: skip
    values = {**asked, "customer_ref": str(customer_id), "team": TICKET_TEAM, "summary": subject, "status": "open",
              "details": {"source": "api", "task_id": task, "request": asked}}  # fmt: skip

    async def after_insert(conn: AsyncConnection[Any], row: dict[str, Any]) -> None:
        if after_write is not None:
            await after_write(conn, _ticket(row, created=True))

    attribution = Attribution(idempotency_key=key, actor=actor, agent=TICKET_AGENT, policy_rule=TICKET_RULE)
    written = await insert_once("tickets", values, attribution, after_insert=after_insert)
    first = (written.row.get("details") or {}).get("request")
    if not written.created and first != asked:
        raise IdempotencyKeyReused("idempotency_key", f"idempotency_key {key!r} was already used for another "
                                   "request; send a new key for a new ticket",
                                   {"ticket_id": written.ledger_id})  # fmt: skip
    log.info("ticket opened", extra={"ticket_id": written.ledger_id, "customer_id": customer_id,
                                     "new": written.created, "actor": actor})  # fmt: skip
    return _ticket(written.row, created=written.created)


# -- loyalty points -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoyaltyTransaction:
    """One ``loyalty_transactions`` row; ``created`` is False when a retry found it."""

    transaction_id: int
    idempotency_key: str
    task_id: str | None
    customer_id: int
    kind: str
    points: int
    delta: int
    balance_before: int
    balance_after: int
    reason: str
    actor: str
    created_at: str
    created: bool

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


LoyaltyWrite = Callable[[AsyncConnection[Any], LoyaltyTransaction], Awaitable[None]]
"""Runs in the change's transaction once its ledger row is written (e.g. the audit trail's row)."""


class _KeyTaken(Exception):
    """The idempotency key was written by a concurrent request for another customer: roll back, then report."""


def _transaction(row: dict[str, Any], created: bool) -> LoyaltyTransaction:
    return LoyaltyTransaction(
        transaction_id=int(row["transaction_id"]), idempotency_key=row["idempotency_key"],
        task_id=str(row["task_id"]) if row["task_id"] is not None else None, customer_id=int(row["customer_id"]),
        kind=row["kind"], points=int(row["points"]), delta=int(row["delta"]),
        balance_before=int(row["balance_before"]), balance_after=int(row["balance_after"]), reason=row["reason"],
        actor=row["actor"], created_at=row["created_at"].isoformat(), created=created,
    )  # fmt: skip


async def balance(customer_id: int, recent: int = RECENT) -> dict[str, Any]:
    """The customer's points and their latest ledger transactions (newest first); :class:`NotFound` if absent."""
    async with current().pool.connection() as conn:
        cur = await conn.execute("SELECT customer_id, loyalty_points FROM customers WHERE customer_id = %s",
                                 (customer_id,))  # fmt: skip
        row = await cur.fetchone()
        cur = await conn.execute("SELECT * FROM loyalty_transactions WHERE customer_id = %s "
                                 "ORDER BY transaction_id DESC LIMIT %s", (customer_id, recent))  # fmt: skip
        rows = await cur.fetchall()
    if row is None:
        await require_customer(customer_id)
        raise NotFound("customer_id", f"customer {customer_id} not found", {"customer_id": customer_id})
    recent_rows = [_transaction(dict(r), created=True).as_dict() for r in rows]
    for item in recent_rows:
        item.pop("created")
    return {"customer_id": int(row["customer_id"]), "loyalty_points": int(row["loyalty_points"]),
            "recent_transactions": recent_rows}  # fmt: skip


def _check_change(kind: str, points: int, reason: str, actor: str, key: str | None) -> None:
    if kind not in ("earn", "redeem"):
        raise InvalidLoyaltyChange("action", f"must be earn or redeem, got {kind!r}")
    if isinstance(points, bool) or not 1 <= points <= MAX_POINTS:
        raise InvalidLoyaltyChange("points", f"must be a whole number from 1 to {MAX_POINTS:,}, got {points}")
    if not reason.strip() or len(reason) > 500:
        raise InvalidLoyaltyChange("reason", "must be 1 to 500 characters with something besides white space")
    if not actor.strip():
        raise InvalidLoyaltyChange("actor", "must name who changes the points")
    if key is not None and not 1 <= len(key) <= 200:
        raise InvalidLoyaltyChange("idempotency_key", "must be 1 to 200 characters")


async def _by_key(conn: AsyncConnection[Any], key: str) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM loyalty_transactions WHERE idempotency_key = %s", (key,))
    row = await cur.fetchone()
    return dict(row) if row is not None else None


def _replay(found: dict[str, Any], customer_id: int, kind: str, points: int, reason: str) -> LoyaltyTransaction:
    """The first transaction of a retried key, or :class:`IdempotencyKeyReused` when it asked for something else."""
    first = (found["customer_id"], found["kind"], found["points"], found["reason"])
    if (customer_id, kind, points, reason) != first:
        raise IdempotencyKeyReused("idempotency_key", f"idempotency_key {found['idempotency_key']!r} was already used "
                                   f"for another loyalty change (customer {first[0]}, {first[1]} {first[2]} points); "
                                   "send a new key for a new change",
                                   {"transaction_id": found["transaction_id"]})  # fmt: skip
    return _transaction(found, created=False)


def _new_balance(before: int, kind: str, points: int) -> int:
    if kind == "redeem":
        if points > before:
            raise InsufficientPoints("points", f"cannot redeem {points} points: the balance is {before}",
                                     {"balance": before, "points": points})  # fmt: skip
        return before - points
    if before + points > MAX_BALANCE:
        raise InvalidLoyaltyChange("points", f"the balance would be {before + points:,}, above the largest allowed "
                                   f"{MAX_BALANCE:,}", {"balance": before, "points": points})  # fmt: skip
    return before + points


_INSERT_SQL: Final = """
INSERT INTO loyalty_transactions (idempotency_key, task_id, customer_id, kind, points, delta, balance_before,
                                  balance_after, reason, actor)
VALUES (%(key)s, %(task)s, %(customer)s, %(kind)s, %(points)s, %(delta)s, %(before)s, %(after)s, %(reason)s,
        %(actor)s)
ON CONFLICT (idempotency_key) DO NOTHING RETURNING *
"""


async def _apply(conn: AsyncConnection[Any], values: dict[str, Any],
                 after_write: LoyaltyWrite | None) -> LoyaltyTransaction:  # fmt: skip
    """Inside the transaction: lock the customer's row, replay or change it, write the ledger row."""
    cur = await conn.execute("SELECT loyalty_points FROM customers WHERE customer_id = %s FOR UPDATE",
                             (values["customer"],))  # fmt: skip
    row = await cur.fetchone()
    if row is None:
        raise NotFound("customer_id", f"customer {values['customer']} not found", {"customer_id": values["customer"]})
    found = await _by_key(conn, values["key"])
    if found is not None:
        return _replay(found, values["customer"], values["kind"], values["points"], values["reason"])
    before = int(row["loyalty_points"])
    after = _new_balance(before, values["kind"], values["points"])
    await conn.execute("UPDATE customers SET loyalty_points = %s WHERE customer_id = %s", (after, values["customer"]))
    cur = await conn.execute(_INSERT_SQL, {**values, "before": before, "after": after, "delta": after - before})
    inserted = await cur.fetchone()
    if inserted is None:
        raise _KeyTaken(values["key"])
    change = _transaction(dict(inserted), created=True)
    if after_write is not None:
        await after_write(conn, change)
    return change


async def change_points(
    customer_id: int,
    kind: Kind,
    points: int,
    *,
    reason: str,
    actor: str,
    idempotency_key: str | None = None,
    task_id: str | None = None,
    after_write: LoyaltyWrite | None = None,
) -> LoyaltyTransaction:
    """Earn or redeem ``points`` for the customer, atomically with its ledger row.

    Raises :class:`InvalidLoyaltyChange` (bad input, a balance above the largest allowed), :class:`InsufficientPoints`
    (a redeem beyond the balance), :class:`NotFound` and :class:`IdempotencyKeyReused`. A retry with the same
    ``idempotency_key`` returns the first transaction with ``created=False`` and changes nothing. ``after_write``
    runs in the same transaction, only for a new change.
    """
    _check_change(kind, points, reason, actor, idempotency_key)
    await require_customer(customer_id)
    task = task_id or str(uuid.uuid4())
    key = idempotency_key or f"task:{task}"
    values: dict[str, Any] = {"key": key, "task": task, "customer": customer_id, "kind": kind, "points": points,
                              "reason": reason.strip(), "actor": actor}  # fmt: skip
    pool = current().pool
    try:
        async with pool.connection() as conn, conn.transaction():
            change = await _apply(conn, values, after_write)
    except _KeyTaken:
        async with pool.connection() as conn:
            found = await _by_key(conn, key)
        if found is None:  # pragma: no cover - a committed key cannot vanish
            raise
        change = _replay(found, customer_id, kind, points, values["reason"])
    log.info("loyalty points changed", extra={"customer_id": customer_id, "before": change.balance_before,
                                              "after": change.balance_after, "new": change.created,
                                              "actor": actor})  # fmt: skip
    return change

