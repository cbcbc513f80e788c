"""Stock levels and stock adjustments for the shop assistant, on the ``inventory`` table.

:func:`stock` reads on hand, on order and lead time per (store, sku), with the days of cover and a reorder flag from
the mean daily sales of the store's last 28 days of recorded sales (the data's "today" is the store's latest sales
day). :func:`adjust_stock` changes one row's on-hand quantity by a ``delta`` or to a ``set_to`` value.

**No lost write.** An adjustment runs in one transaction that first locks the stock row (``SELECT ... FOR
UPDATE``): concurrent adjustments of the same row queue on that lock, and each computes its new quantity from the
quantity the previous one committed. ``expected_version`` makes an update conditional: ``inventory.version`` is
bumped by a trigger on every write of ``on_hand`` (migration 0010), so an update whose client read an older
version is refused with :class:`StaleVersion` and the numbers. A result below zero is refused with
:class:`NegativeStock`.

**Ledger and retries.** Every adjustment writes one ``inventory_adjustments`` row (before, after, delta, reason,
actor) in the same transaction as the change. Its idempotency key (the client's, or one per request) is unique: a
retried request finds its first row and changes nothing (``created`` is False); a key reused for another
adjustment is refused with :class:`IdempotencyKeyReused`.

Lookups that fail raise :class:`NotFound` with a few close matches; the HTTP edge maps these errors to statuses.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from psycopg import AsyncConnection

from tools.deps import current

log = logging.getLogger(__name__)

COVER_WINDOW_DAYS: Final = 28
"""Days of recent sales whose mean daily units give the days of cover."""
MAX_ON_HAND: Final = 1_000_000_000
"""Largest on-hand quantity an adjustment may leave."""
SUGGESTIONS: Final = 5
"""Close matches named when a sku, store or category is unknown."""


# -- errors ---------------------------------------------------------------------------------------------------


class ShopError(Exception):
    """A refused shop request: ``field`` names the input at fault, ``details`` adds the numbers."""

    code = "INVALID_REQUEST"

    def __init__(self, field: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.details = {"field": field, **(details or {})}


class NotFound(ShopError):
    """A sku, store or category that does not exist (``details`` names a few that do)."""

    code = "DATA_NOT_FOUND"


class InvalidAdjustment(ShopError):
    """An adjustment that is malformed or breaks a bound."""


class NegativeStock(InvalidAdjustment):
    """The adjustment would leave a negative on-hand quantity."""

    code = "NEGATIVE_STOCK"


class StaleVersion(ShopError):
    """``expected_version`` is not the row's current version: someone changed the stock since it was read."""

    code = "VERSION_CONFLICT"


class IdempotencyKeyReused(ShopError):
    """An idempotency key already used for a different adjustment."""

    code = "IDEMPOTENCY_KEY_REUSED"


# -- catalog lookups ------------------------------------------------------------------------------------------


def _digits(value: int | str) -> int | None:
    """The integer a sku is written as (``1003``, ``"1003"``, ``"SKU1003"`` -> 1003), None when it has no digits."""
    if isinstance(value, int):
        return value
    found = re.findall(r"[0-9]+", value)
    return int(found[-1]) if found and len(found[-1]) <= 12 else None


def _closest(candidates: Sequence[int], near: int | None, limit: int = SUGGESTIONS) -> list[int]:
    ordered = sorted(candidates, key=lambda c: (abs(c - near), c)) if near is not None else sorted(candidates)
    return sorted(ordered[:limit])


async def _column(query: Any, params: Sequence[Any] = ()) -> list[Any]:
    async with current().pool.connection() as conn:
        cur = await conn.execute(query, params)
        return [next(iter(row.values())) for row in await cur.fetchall()]


async def resolve_sku(value: int | str, field: str = "sku") -> int:
    """The catalog sku ``value`` names; :class:`NotFound` with the closest skus when there is none."""
    number = _digits(value)
    exact = isinstance(value, int) or re.fullmatch(r"[0-9]+", value.strip()) is not None
    known = exact and number is not None and number <= 2**31 - 1
    if known and await _column("SELECT sku FROM products WHERE sku = %s", (number,)):
        return int(number or 0)
    skus = await _column("SELECT sku FROM products")
    raise NotFound(field, f"{value} not found in the catalog",
                   {"sku": value, "available_skus": _closest(skus, number)})  # fmt: skip


async def require_store(store_id: int, field: str = "store_id") -> int:
    """``store_id`` when the store exists; :class:`NotFound` naming the closest stores otherwise."""
    if await _column("SELECT store_id FROM stores WHERE store_id = %s", (store_id,)):
        return store_id
    stores = await _column("SELECT store_id FROM stores")
    raise NotFound(field, f"store {store_id} does not exist",
                   {"store_id": store_id, "available_store_ids": _closest(stores, store_id)})  # fmt: skip


async def require_category(category: str, field: str = "category") -> str:
    """The catalog's spelling of ``category`` (case-insensitive); :class:`NotFound` listing the categories."""
    categories = await _column("SELECT DISTINCT category FROM products ORDER BY category")
    for name in categories:
        if name.lower() == category.strip().lower():
            return str(name)
    raise NotFound(field, f"category {category!r} not found", {"available_categories": categories})


async def require_stocked(store_id: int, sku: int, field: str = "sku") -> None:
    """:class:`NotFound` when the store does not stock the sku (naming skus it does stock)."""
    if await _column("SELECT sku FROM inventory WHERE store_id = %s AND sku = %s", (store_id, sku)):
        return
    stocked = await _column("SELECT sku FROM inventory WHERE store_id = %s", (store_id,))
    raise NotFound(field, f"store {store_id} does not stock sku {sku}",
                   {"sku": sku, "store_id": store_id, "available_skus": _closest(stocked, sku)})  # fmt: skip


# -- stock levels ---------------------------------------------------------------------------------------------

_STOCK_SQL: Final = """
WITH today AS (
    SELECT s.store_id, (SELECT max(d.date) FROM sales_daily d WHERE d.store_id = s.store_id) AS last_day
    FROM stores s
)
SELECT i.store_id, i.sku, p.name, p.category, i.on_hand, i.on_order, i.lead_time_days, i.version, i.updated_at,
       t.last_day, coalesce(w.units, 0)::bigint AS units_window
FROM inventory i
JOIN products p ON p.sku = i.sku
JOIN today t ON t.store_id = i.store_id
LEFT JOIN LATERAL (
    SELECT sum(sd.units) AS units FROM sales_daily sd
    WHERE sd.store_id = i.store_id AND sd.sku = i.sku AND sd.date > t.last_day - %(window)s AND sd.date <= t.last_day
) w ON true
WHERE (%(store)s::int IS NULL OR i.store_id = %(store)s)
  AND (%(skus)s::int[] IS NULL OR i.sku = ANY(%(skus)s))
  AND (%(category)s::text IS NULL OR p.category = %(category)s)
ORDER BY i.store_id, i.sku
"""


def _stock_row(row: dict[str, Any]) -> dict[str, Any]:
    """One stock line with its cover and reorder numbers (the mean is None when the store has no sales)."""
    on_hand, on_order, lead = int(row["on_hand"]), int(row["on_order"]), int(row["lead_time_days"])
    mean = int(row["units_window"]) / COVER_WINDOW_DAYS if row["last_day"] is not None else None
    cover = round(on_hand / mean, 1) if mean else None
    reorder_point = round(mean * lead, 1) if mean is not None else None
    reorder = bool(mean) and reorder_point is not None and on_hand + on_order <= reorder_point
    return {
        "store_id": int(row["store_id"]), "sku": int(row["sku"]), "product_name": row["name"],
        "category": row["category"], "on_hand": on_hand, "on_order": on_order, "lead_time_days": lead,
        "mean_daily_sales": round(mean, 3) if mean is not None else None, "days_of_cover": cover,
        "reorder_point": reorder_point, "reorder": reorder, "version": int(row["version"]),
        "sales_through": row["last_day"].isoformat() if row["last_day"] is not None else None,
        "updated_at": row["updated_at"].isoformat(),
    }  # fmt: skip


async def stock(store_id: int | None = None, skus: Sequence[int] | None = None,
                category: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Stock lines for the filters given (all stores, skus or categories when a filter is None), by store, sku.

    ``mean_daily_sales`` is the units of the last 28 days of the store's recorded sales over 28; ``days_of_cover``
    is on hand over that mean (None when nothing sold); ``reorder`` is True when on hand + on order is at most the
    lead time's demand (``reorder_point`` = mean x lead time).
    """
    params = {"store": store_id, "skus": list(skus) if skus is not None else None, "category": category,
              "window": COVER_WINDOW_DAYS}  # fmt: skip
    async with current().pool.connection() as conn:
        cur = await conn.execute(_STOCK_SQL, params)
        rows = await cur.fetchall()
    return [_stock_row(dict(row)) for row in rows]


# -- adjustments ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Adjustment:
    """One ledger row of ``inventory_adjustments``; ``created`` is False when a retry found it."""

    adjustment_id: int
    idempotency_key: str
    task_id: str | None
    store_id: int
    sku: int
    kind: str
    requested: int
    expected_version: int | None
    before: int
    after: int
    delta: int
    version: int
    reason: str
    actor: str
    created_at: str
    created: bool

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


AfterWrite = Callable[[AsyncConnection[Any], Adjustment], Awaitable[None]]
"""Runs in the adjustment's transaction once its row is written (e.g. the audit trail's row)."""


class _KeyTaken(Exception):
    """The idempotency key was written by a concurrent request on another row: roll back, then report."""


def _check_request(delta: int | None, set_to: int | None, reason: str, actor: str, key: str | None) -> None:
    if (delta is None) == (set_to is None):
        raise InvalidAdjustment("delta", "send exactly one of delta (a change) or set_to (a new on-hand quantity)")
    if delta is not None and (delta == 0 or abs(delta) > MAX_ON_HAND):
        raise InvalidAdjustment("delta", f"must be a non-zero whole number from -{MAX_ON_HAND:,} to {MAX_ON_HAND:,}, "
                                f"got {delta}")  # fmt: skip
    if set_to is not None and not 0 <= set_to <= MAX_ON_HAND:
        raise InvalidAdjustment("set_to", f"must be a whole number from 0 to {MAX_ON_HAND:,}, got {set_to}")
    if not reason.strip() or len(reason) > 500:
        raise InvalidAdjustment("reason", "must be 1 to 500 characters with something besides white space")
    if not actor.strip():
        raise InvalidAdjustment("actor", "must name who makes the adjustment")
    if key is not None and not 1 <= len(key) <= 200:
        raise InvalidAdjustment("idempotency_key", "must be 1 to 200 characters")


def _adjustment(row: dict[str, Any], created: bool) -> Adjustment:
    return Adjustment(
        adjustment_id=int(row["adjustment_id"]), idempotency_key=row["idempotency_key"],
        task_id=str(row["task_id"]) if row["task_id"] is not None else None, store_id=int(row["store_id"]),
        sku=int(row["sku"]), kind=row["kind"], requested=int(row["requested"]),
        expected_version=row["expected_version"], before=int(row["before_qty"]), after=int(row["after_qty"]),
        delta=int(row["delta"]), version=int(row["version"]), reason=row["reason"], actor=row["actor"],
        created_at=row["created_at"].isoformat(), created=created,
    )  # fmt: skip


async def _by_key(conn: AsyncConnection[Any], key: str) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM inventory_adjustments WHERE idempotency_key = %s", (key,))
    row = await cur.fetchone()
    return dict(row) if row is not None else None


def _replay(found: dict[str, Any], store_id: int, sku: int, kind: str, requested: int,
            expected_version: int | None) -> Adjustment:  # fmt: skip
    """The first adjustment of a retried key, or :class:`IdempotencyKeyReused` when it asked for something else."""
    asked = (store_id, sku, kind, requested, expected_version)
    first = (found["store_id"], found["sku"], found["kind"], found["requested"], found["expected_version"])
    if asked != first:
        raise IdempotencyKeyReused("idempotency_key", f"idempotency_key {found['idempotency_key']!r} was already used "
                                   f"for another adjustment (store {first[0]}, sku {first[1]}, {first[2]} "
                                   f"{first[3]}); send a new key for a new adjustment",
                                   {"adjustment_id": found["adjustment_id"]})  # fmt: skip
    return _adjustment(found, created=False)


def _new_quantity(before: int, version: int, delta: int | None, set_to: int | None,
                  expected_version: int | None) -> int:  # fmt: skip
    if expected_version is not None and expected_version != version:
        raise StaleVersion("expected_version", f"the stock row is at version {version}, not {expected_version}: it "
                           "changed since it was read; read it again and retry",
                           {"expected_version": expected_version, "current_version": version,
                            "on_hand": before})  # fmt: skip
    after = before + delta if delta is not None else int(set_to or 0)
    if after < 0:
        raise NegativeStock("delta", f"on hand {before} {delta:+d} would be {after}: on-hand stock cannot go below 0",
                            {"on_hand": before, "delta": delta, "result": after})  # fmt: skip
    if after > MAX_ON_HAND:
        raise InvalidAdjustment("delta" if delta is not None else "set_to", f"on hand would be {after:,}, above the "
                                f"largest allowed {MAX_ON_HAND:,}", {"on_hand": before, "result": after})  # fmt: skip
    return after


_INSERT_SQL: Final = """
INSERT INTO inventory_adjustments (idempotency_key, task_id, store_id, sku, kind, requested, expected_version,
                                   before_qty, after_qty, delta, version, reason, actor)
VALUES (%(key)s, %(task)s, %(store)s, %(sku)s, %(kind)s, %(requested)s, %(expected)s, %(before)s, %(after)s,
        %(delta)s, %(version)s, %(reason)s, %(actor)s)
ON CONFLICT (idempotency_key) DO NOTHING RETURNING *
"""


async def _apply(conn: AsyncConnection[Any], values: dict[str, Any], delta: int | None, set_to: int | None,
                 after_write: AfterWrite | None) -> Adjustment:  # fmt: skip
    """Inside the transaction: lock the row, replay or change it, write the ledger row (and ``after_write``)."""
    cur = await conn.execute("SELECT on_hand, version FROM inventory WHERE store_id = %s AND sku = %s FOR UPDATE",
                             (values["store"], values["sku"]))  # fmt: skip
    row = await cur.fetchone()
    if row is None:
        raise NotFound("sku", f"store {values['store']} does not stock sku {values['sku']}")
    found = await _by_key(conn, values["key"])
    if found is not None:
        return _replay(found, values["store"], values["sku"], values["kind"], values["requested"], values["expected"])
    before, version = int(row["on_hand"]), int(row["version"])
    after = _new_quantity(before, version, delta, set_to, values["expected"])
    cur = await conn.execute("UPDATE inventory SET on_hand = %s, updated_at = now() WHERE store_id = %s AND sku = %s "
                             "RETURNING version", (after, values["store"], values["sku"]))  # fmt: skip
    updated = await cur.fetchone()
    assert updated is not None  # the row is locked by this transaction
    cur = await conn.execute(_INSERT_SQL, {**values, "before": before, "after": after, "delta": after - before,
                                           "version": int(updated["version"])})  # fmt: skip
    inserted = await cur.fetchone()
    if inserted is None:
        raise _KeyTaken(values["key"])
    adjustment = _adjustment(dict(inserted), created=True)
    if after_write is not None:
        await after_write(conn, adjustment)
    return adjustment


async def adjust_stock(
    store_id: int,
    sku: int,
    *,
    delta: int | None = None,
    set_to: int | None = None,
    expected_version: int | None = None,
    reason: str,
    actor: str,
    idempotency_key: str | None = None,
    task_id: str | None = None,
    after_write: AfterWrite | None = None,
) -> Adjustment:
    """Change one stock row's on hand by ``delta`` or to ``set_to`` (exactly one), atomically with its ledger row.

    Raises :class:`InvalidAdjustment` / :class:`NegativeStock` (bad input, a result below 0), :class:`StaleVersion`
    (``expected_version`` is not current), :class:`NotFound` (the store does not stock the sku) and
    :class:`IdempotencyKeyReused`. A retry with the same ``idempotency_key`` returns the first adjustment with
    ``created=False`` and changes nothing. ``after_write`` runs in the same transaction, only for a new adjustment.
    """
    _check_request(delta, set_to, reason, actor, idempotency_key)
    task = task_id or str(uuid.uuid4())
    key = idempotency_key or f"task:{task}"
    kind = "delta" if delta is not None else "set"
    requested = int(delta if delta is not None else set_to or 0)
    values: dict[str, Any] = {"key": key, "task": task, "store": store_id, "sku": sku, "kind": kind,
                              "requested": requested, "expected": expected_version, "reason": reason.strip(),
                              "actor": actor}  # fmt: skip
    pool = current().pool
    try:
        async with pool.connection() as conn, conn.transaction():
            adjustment = await _apply(conn, values, delta, set_to, after_write)
    except _KeyTaken:
        async with pool.connection() as conn:
            found = await _by_key(conn, key)
        if found is None:  # pragma: no cover - a committed key cannot vanish
            raise
        adjustment = _replay(found, store_id, sku, kind, requested, expected_version)
    facts = {"store_id": store_id, "sku": sku, "before": adjustment.before, "after": adjustment.after,
             "new": adjustment.created, "actor": actor}  # fmt: skip
    log.info("stock adjusted", extra=facts)
    return adjustment
