"""The one way side effects are written: an idempotent, attributed insert into a ledger table.

:func:`insert_once` inserts a row keyed on its idempotency key (``INSERT ... ON CONFLICT (idempotency_key) DO
NOTHING``) and reads the row back, so running the same action twice writes one row and reports the second run as
a replay (``created=False``). Every row carries the actor (``agent:<specialist>`` or the approver's key name), the
specialist, the policy rule that allowed it and the citations it relied on.

A :class:`Guard` re-checks a policy limit inside the insert's transaction, under an advisory lock on what the
limit counts (the order's compensations, the customer's apologies...), so two threads acting on the same order at
once cannot both slip under a limit the guardrail checked before either wrote: the second insert is rolled back
with :class:`LedgerLimitError`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, LiteralString

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from tools.deps import current

log = logging.getLogger(__name__)

LEDGER_TABLES: Final[dict[str, str]] = {
    "refunds": "refund_id",
    "store_credits": "credit_id",
    "notifications": "notification_id",
    "tickets": "ticket_id",
    "shipment_changes": "change_id",
    "interactions": "interaction_id",
    "ticket_updates": "update_id",
    "purchase_orders": "po_id",
    "promotions": "promotion_id",
}
"""Ledger table -> its id column (the only tables :func:`insert_once` writes)."""


class LedgerLimitError(RuntimeError):
    """A policy limit was reached between the guardrail's check and the write; nothing was written."""


@dataclass(frozen=True)
class Attribution:
    """Who writes a ledger row, under which key and rule."""

    idempotency_key: str
    actor: str
    agent: str
    policy_rule: str
    thread_id: str | None = None
    citations: tuple[str, ...] = ()


@dataclass(frozen=True)
class LedgerWrite:
    """The ledger row an action wrote (or found, on a replay)."""

    ledger: str
    ledger_id: int
    created: bool
    row: dict[str, Any]


@dataclass(frozen=True)
class Guard:
    """A limit re-checked after the insert, under ``pg_advisory_xact_lock(lock)``; ``check`` returns the problem
    (the transaction is rolled back) or None."""

    lock: str
    check: Callable[[AsyncConnection[Any]], Awaitable[str | None]]


AfterInsert = Callable[[AsyncConnection[Any], dict[str, Any]], Awaitable[None]]


def _value(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


async def insert_once(
    table: str,
    values: dict[str, Any],
    attribution: Attribution,
    *,
    guard: Guard | None = None,
    after_insert: AfterInsert | None = None,
) -> LedgerWrite:
    """Insert one attributed row into ``table`` unless its idempotency key exists; return the row either way.

    ``after_insert`` runs in the same transaction, only when the row was created (a replay changes nothing).
    """
    id_column = LEDGER_TABLES.get(table)
    if id_column is None:
        raise ValueError(f"table: {table!r} is not a ledger; allowed: {', '.join(LEDGER_TABLES)}")
    if not attribution.idempotency_key or not attribution.actor or not attribution.policy_rule:
        raise ValueError("attribution: idempotency_key, actor and policy_rule are required")
    row = {
        **values,
        "idempotency_key": attribution.idempotency_key,
        "actor": attribution.actor,
        "agent": attribution.agent,
        "policy_rule": attribution.policy_rule,
        "thread_id": attribution.thread_id,
        "citations": list(attribution.citations),
    }
    columns = list(row)
    insert = sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT (idempotency_key) DO NOTHING RETURNING *"
    ).format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        values=sql.SQL(", ").join(sql.Placeholder() for _ in columns),
    )
    select = sql.SQL("SELECT * FROM {table} WHERE idempotency_key = %s").format(table=sql.Identifier(table))
    async with current().pool.connection() as conn, conn.transaction():
        if guard is not None:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (guard.lock,))
        cur = await conn.execute(insert, [_value(row[c]) for c in columns])
        inserted = await cur.fetchone()
        if inserted is not None:
            written = dict(inserted)
            if guard is not None:
                problem = await guard.check(conn)
                if problem is not None:
                    raise LedgerLimitError(problem)
            if after_insert is not None:
                await after_insert(conn, written)
            created = True
        else:
            cur = await conn.execute(select, (attribution.idempotency_key,))
            found = await cur.fetchone()
            if found is None:  # pragma: no cover - the conflicting row cannot vanish inside the transaction
                raise RuntimeError(f"{table}: key {attribution.idempotency_key!r} conflicted but is not there")
            written, created = dict(found), False
    log.info(
        "ledger write",
        extra={"ledger": table, "key": attribution.idempotency_key, "written": created, "actor": attribution.actor},
    )
    return LedgerWrite(ledger=table, ledger_id=int(written[id_column]), created=created, row=written)


async def count(conn: AsyncConnection[Any], query: LiteralString, params: dict[str, Any]) -> int:
    """The single integer a guard's counting query returns."""
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    if row is None:
        return 0
    value = next(iter(row.values())) if isinstance(row, dict) else row[0]
    return int(value or 0)
