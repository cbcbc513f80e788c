"""Customer tools for the chat workflow's customer specialist and the shop assistant: profile, top customers,
segments and recommendations, over the ``customers``, ``orders`` and ``products`` tables.

The analytics (:mod:`ml.customer_analytics`: RFM, K-Means segments, lifetime value, churn risk, co-purchase
recommendations) are computed once per process from the database and reused until the data changes. The data's
version is ``dataset_info.seeded_at`` with the orders' count, refunded count, latest order date and value and
quantity totals, read on every call (one aggregate query); when it differs from the cached one the analytics are
recomputed. Loading reads the version and the rows in one repeatable-read transaction, so a cached result always
matches its version. The pandas / scikit-learn work runs in a worker thread (:func:`asyncio.to_thread`), and an
:class:`asyncio.Lock` makes concurrent first calls compute once.

What counts: every order is a purchase (recency, frequency, co-purchases), but a refunded order adds no value
(``monetary`` and the profile's ``total_spent`` sum ``order_value`` over orders not refunded). The as-of date is
``dataset_info.as_of`` (the data's today), or the latest order date when that is later or missing. Customers
without orders have a profile and loyalty points but no segment, lifetime value or churn flag.

A profile holds the customer's row as seeded (name and email included: callers redact before any LLM) and the
figures derived from their orders; nothing else personal.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final, Literal, LiteralString

import numpy as np
import pandas as pd

from ml.customer_analytics import (
    ChurnResult,
    ClvResult,
    Recommendation,
    Segment,
    Segmentation,
    churn_risk,
    clv,
    fit_segments,
    popular_items,
    recommend,
    rfm_table,
)
from ml.errors import InputError
from tools.deps import current

log = logging.getLogger(__name__)

SEGMENTS_K: Final = 4
SEGMENTS_SEED: Final = 7
MAX_LIMIT: Final = 100
MAX_RECOMMENDATIONS: Final = 20
RankBy = Literal["loyalty_points", "clv", "monetary", "frequency"]
RANK_BY: Final[tuple[str, ...]] = ("loyalty_points", "clv", "monetary", "frequency")

_VERSION: Final = """
SELECT (SELECT seeded_at FROM dataset_info WHERE id = 1) AS seeded_at,
       (SELECT as_of FROM dataset_info WHERE id = 1) AS as_of,
       count(*) AS orders,
       count(*) FILTER (WHERE payment_status = 'refunded') AS refunded,
       max(order_date) AS last_order,
       coalesce(sum(order_value), 0) AS value_total,
       coalesce(sum(quantity), 0) AS quantity_total
FROM orders
"""
_ORDERS: Final = """
SELECT customer_id, order_date, sku, quantity,
       CASE WHEN payment_status = 'refunded' THEN 0 ELSE order_value END AS order_value
FROM orders
"""
_PRODUCTS: Final = "SELECT sku, name, category FROM products ORDER BY sku"
_PROFILE: Final = """
SELECT c.customer_id, c.name, c.email, c.gender, c.city, c.segment, c.prior_purchases, c.rating, c.care_calls,
       c.loyalty_points, c.created_at,
       count(o.order_id) AS orders,
       count(o.order_id) FILTER (WHERE o.payment_status = 'refunded') AS refunded_orders,
       coalesce(sum(o.order_value) FILTER (WHERE o.payment_status <> 'refunded'), 0) AS total_spent,
       min(o.order_date) AS first_order, max(o.order_date) AS last_order
FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id
WHERE c.customer_id = %(customer_id)s
GROUP BY c.customer_id
"""
_BY_LOYALTY: Final = """
SELECT customer_id, name, loyalty_points FROM customers
WHERE %(ids)s::int[] IS NULL OR customer_id = ANY(%(ids)s)
ORDER BY loyalty_points DESC, customer_id
LIMIT %(limit)s
"""
_BY_IDS: Final = "SELECT customer_id, name, loyalty_points FROM customers WHERE customer_id = ANY(%(ids)s)"
_EXISTS: Final = "SELECT 1 AS found FROM customers WHERE customer_id = %(customer_id)s"


# -- results -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerProfile:
    """One customer: the seeded row, order figures (SQL over all their orders) and the analytics' view.

    ``crm_segment`` is the segment stored with the customer; ``segment`` the RFM segment of the analytics.
    Analytics fields are None for a customer without orders.
    """

    customer_id: int
    name: str
    email: str
    gender: str
    city: str
    crm_segment: str
    prior_purchases: int
    rating: int
    care_calls: int
    loyalty_points: int
    created_at: date
    orders: int
    refunded_orders: int
    total_spent: float  # sum of order_value over orders not refunded
    first_order: date | None
    last_order: date | None
    recency_days: int | None
    as_of: date
    segment: str | None
    clv: float | None
    clv_horizon_days: int | None
    expected_purchases: float | None  # purchase days expected over the horizon while active
    p_active: float | None
    value_per_purchase: float | None
    churn_risk: bool | None
    churn_score: float | None
    churn_reason: str | None
    how: str


@dataclass(frozen=True)
class TopCustomer:
    """A row of :func:`top_customers`: ``value`` is the ranked measure ``by``."""

    rank: int
    customer_id: int
    name: str
    by: str
    value: float
    loyalty_points: int
    segment: str | None
    clv: float | None
    monetary: float | None
    frequency: int | None
    how: str


@dataclass(frozen=True)
class CustomerSegments:
    """The RFM segments (best first); their sizes add up to ``customers_with_orders``."""

    as_of: date
    k: int
    silhouette: float | None
    customers_with_orders: int
    segments: tuple[Segment, ...]
    how: str


@dataclass(frozen=True)
class DataVersion:
    """What the cached analytics were computed from; any change means recompute."""

    seeded_at: datetime | None
    as_of: date | None
    orders: int
    refunded: int
    last_order: date | None
    value_total: float
    quantity_total: int


@dataclass(frozen=True)
class CustomerAnalytics:
    """Everything derived from the orders at one :class:`DataVersion`."""

    version: DataVersion
    as_of: date
    rfm: pd.DataFrame = field(compare=False, repr=False)
    segmentation: Segmentation | None
    clv: ClvResult | None
    churn: ChurnResult | None
    purchases: pd.DataFrame = field(compare=False, repr=False)
    products: pd.DataFrame = field(compare=False, repr=False)


# -- the cache ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    pool: Any
    analytics: CustomerAnalytics


_cache: dict[str, _Entry] = {}
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def clear_cache() -> None:
    """Forget the cached analytics (the next call recomputes)."""
    _cache.clear()


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


def _version(row: dict[str, Any]) -> DataVersion:
    return DataVersion(
        seeded_at=row["seeded_at"], as_of=row["as_of"], orders=int(row["orders"]), refunded=int(row["refunded"]),
        last_order=row["last_order"], value_total=float(row["value_total"]),
        quantity_total=int(row["quantity_total"]),
    )  # fmt: skip


async def _fetch(sql: LiteralString, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    async with current().pool.connection() as conn:
        cur = await conn.execute(sql, params)
        return list(await cur.fetchall())


async def _current_version() -> DataVersion:
    rows = await _fetch(_VERSION)
    return _version(rows[0])


async def _load() -> tuple[DataVersion, list[dict[str, Any]], list[dict[str, Any]]]:
    """The version and the rows it describes, read in one snapshot."""
    async with current().pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        head = await (await conn.execute(_VERSION)).fetchone()
        assert head is not None  # an aggregate without GROUP BY always has one row
        version = _version(head)
        orders = list(await (await conn.execute(_ORDERS)).fetchall())
        products = list(await (await conn.execute(_PRODUCTS)).fetchall())
    return version, orders, products


def _as_of(version: DataVersion) -> date:
    days = [d for d in (version.as_of, version.last_order) if d is not None]
    return max(days) if days else date.today()


def _segment_safely(rfm: pd.DataFrame) -> Segmentation | None:
    """K-Means segments (k = 4, or the number of distinct customers when fewer); None below 2."""
    distinct = len(rfm[["recency_days", "frequency", "monetary"]].drop_duplicates())
    k = min(SEGMENTS_K, distinct)
    if k < 2:
        return None
    return fit_segments(rfm, k=k, seed=SEGMENTS_SEED)


def _clv_safely(rfm: pd.DataFrame) -> ClvResult | None:
    """CLV, or None when no customer has any history before the as-of date (no purchase rate to estimate)."""
    if rfm.empty:
        return None
    try:
        return clv(rfm)
    except InputError as err:
        log.info("no lifetime values: %s", err)
        return None


def _compute(
    version: DataVersion, order_rows: list[dict[str, Any]], product_rows: list[dict[str, Any]]
) -> CustomerAnalytics:
    """The pandas / scikit-learn part (runs in a worker thread)."""
    as_of = _as_of(version)
    orders = pd.DataFrame.from_records(order_rows, columns=["customer_id", "order_date", "sku", "quantity",
                                                            "order_value"])  # fmt: skip
    orders["order_value"] = orders["order_value"].astype(float)
    products = pd.DataFrame.from_records(product_rows, columns=["sku", "name", "category"])
    rfm = rfm_table(orders[["customer_id", "order_date", "order_value"]], as_of)
    purchases = orders.loc[orders["sku"].notna(), ["customer_id", "sku", "quantity"]].astype("int64")
    analytics = CustomerAnalytics(
        version=version, as_of=as_of, rfm=rfm, segmentation=_segment_safely(rfm), clv=_clv_safely(rfm),
        churn=churn_risk(rfm) if not rfm.empty else None, purchases=purchases, products=products,
    )  # fmt: skip
    log.info("customer analytics computed: %d customers, %d orders, as of %s", len(rfm), len(orders), as_of)
    return analytics


async def analytics() -> CustomerAnalytics:
    """The analytics of the current data (cached; recomputed when the data's version changes)."""
    pool = current().pool
    version = await _current_version()
    entry = _cache.get("customers")
    if entry is not None and entry.pool is pool and entry.analytics.version == version:
        return entry.analytics
    async with _lock():
        entry = _cache.get("customers")
        if entry is not None and entry.pool is pool and entry.analytics.version == await _current_version():
            return entry.analytics
        loaded_version, orders, products = await _load()
        result = await asyncio.to_thread(_compute, loaded_version, orders, products)
        _cache["customers"] = _Entry(pool, result)
        return result


# -- helpers -----------------------------------------------------------------------------------------------


def frame_value(frame: pd.DataFrame | None, customer_id: int, column: str) -> Any:
    """A customer's value in an analytics table as a plain Python value (None when absent or NaN)."""
    if frame is None or customer_id not in frame.index:
        return None
    value = frame.at[customer_id, column]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if np.isnan(value) else float(value)
    return value


def _segment_of(data: CustomerAnalytics, customer_id: int) -> str | None:
    seg = data.segmentation
    if seg is None or customer_id not in seg.labels.index:
        return None
    return str(seg.labels.at[customer_id])


def _profile_how(data: CustomerAnalytics) -> str:
    parts = [f"order figures over all the customer's orders (refunded ones add no value), as of {data.as_of}"]
    parts += [r.how for r in (data.segmentation, data.clv, data.churn) if r is not None]
    return "; ".join(parts)


def _check_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"must be an integer from {low} to {high}, got {value!r}", field=name)
    return value


# -- tools -------------------------------------------------------------------------------------------------


async def customer_profile(customer_id: int) -> CustomerProfile | None:
    """The customer's profile, or None when there is no such customer."""
    customer_id = _check_int(customer_id, "customer_id", -(2**31), 2**31 - 1)
    rows = await _fetch(_PROFILE, {"customer_id": customer_id})
    if not rows:
        return None
    row = rows[0]
    data = await analytics()
    clv_table = data.clv.table if data.clv is not None else None
    churn_table = data.churn.table if data.churn is not None else None
    last = row["last_order"]
    return CustomerProfile(
        customer_id=int(row["customer_id"]), name=row["name"], email=row["email"], gender=row["gender"],
        city=row["city"], crm_segment=row["segment"], prior_purchases=int(row["prior_purchases"]),
        rating=int(row["rating"]), care_calls=int(row["care_calls"]), loyalty_points=int(row["loyalty_points"]),
        created_at=row["created_at"], orders=int(row["orders"]), refunded_orders=int(row["refunded_orders"]),
        total_spent=float(row["total_spent"]), first_order=row["first_order"], last_order=last,
        recency_days=(data.as_of - last).days if last is not None else None, as_of=data.as_of,
        segment=_segment_of(data, customer_id), clv=frame_value(clv_table, customer_id, "clv"),
        clv_horizon_days=data.clv.horizon_days if data.clv is not None and customer_id in data.clv.table.index
        else None,
        expected_purchases=frame_value(clv_table, customer_id, "purchases_if_active"),
        p_active=frame_value(clv_table, customer_id, "p_active"),
        value_per_purchase=frame_value(clv_table, customer_id, "value_per_purchase"),
        churn_risk=frame_value(churn_table, customer_id, "at_risk"),
        churn_score=frame_value(churn_table, customer_id, "score"),
        churn_reason=frame_value(churn_table, customer_id, "reason"), how=_profile_how(data),
    )  # fmt: skip


def _ranked_ids(data: CustomerAnalytics, by: str, members: list[int] | None, limit: int) -> list[tuple[int, float]]:
    if by == "clv":
        if data.clv is None:
            return []
        values = data.clv.table["clv"]
    else:
        values = data.rfm[by]
    if members is not None:
        values = values[values.index.isin(members)]
    ordered = values.reset_index().sort_values([by, "customer_id"], ascending=[False, True]).head(limit)
    return [(int(c), float(v)) for c, v in zip(ordered["customer_id"], ordered[by], strict=True)]


def _top_how(data: CustomerAnalytics, by: str, segment: str | None) -> str:
    scope = f"customers of the RFM segment {segment!r}" if segment else "all customers"
    measure = {
        "loyalty_points": "loyalty points as stored with the customer",
        "clv": data.clv.how if data.clv is not None else "lifetime value",
        "monetary": "total order value (refunded orders excluded)",
        "frequency": "number of orders",
    }[by]
    return f"{scope} ranked by {measure} (ties by customer id), as of {data.as_of}"


def _top_row(
    data: CustomerAnalytics, rank: int, cid: int, value: float, row: dict[str, Any], by: str, how: str
) -> TopCustomer:
    clv_table = data.clv.table if data.clv is not None else None
    return TopCustomer(
        rank=rank, customer_id=cid, name=row["name"], by=by, value=value, loyalty_points=int(row["loyalty_points"]),
        segment=_segment_of(data, cid), clv=frame_value(clv_table, cid, "clv"),
        monetary=frame_value(data.rfm, cid, "monetary"),
        frequency=frame_value(data.rfm, cid, "frequency"), how=how,
    )  # fmt: skip


async def top_customers(
    by: RankBy = "loyalty_points", limit: int = 10, segment: str | None = None
) -> list[TopCustomer]:
    """The ``limit`` best customers by ``by``, optionally within one RFM segment (see :func:`customer_segments`)."""
    if by not in RANK_BY:
        raise InputError(f"cannot rank by {by!r}", field="by", allowed=list(RANK_BY))
    limit = _check_int(limit, "limit", 1, MAX_LIMIT)
    data = await analytics()
    members: list[int] | None = None
    if segment is not None:
        if data.segmentation is None:
            raise InputError("there are no segments (no customers with orders)", field="segment", allowed=[])
        data.segmentation.segment(segment)  # raises InputError with the allowed names
        labels = data.segmentation.labels
        members = [int(c) for c in labels.index[labels == segment]]
    if by == "loyalty_points":
        rows = await _fetch(_BY_LOYALTY, {"ids": members, "limit": limit})
        ranked = [(int(r["customer_id"]), float(r["loyalty_points"])) for r in rows]
        by_id = {int(r["customer_id"]): r for r in rows}
    else:
        ranked = _ranked_ids(data, by, members, limit)
        rows = await _fetch(_BY_IDS, {"ids": [c for c, _ in ranked]})
        by_id = {int(r["customer_id"]): r for r in rows}
    how = _top_how(data, by, segment)
    return [_top_row(data, rank, cid, value, by_id[cid], by, how) for rank, (cid, value) in enumerate(ranked, 1)]


async def customer_segments() -> CustomerSegments:
    """The RFM segments of the customers with orders: size, share, centroid, mean R/F/M, description."""
    data = await analytics()
    seg = data.segmentation
    if seg is None:
        return CustomerSegments(as_of=data.as_of, k=0, silhouette=None, customers_with_orders=len(data.rfm),
                                segments=(), how=f"no segments: fewer than 2 distinct customers with orders as of "
                                f"{data.as_of}")  # fmt: skip
    return CustomerSegments(as_of=data.as_of, k=seg.k, silhouette=seg.silhouette,
                            customers_with_orders=len(data.rfm), segments=seg.segments, how=seg.how)  # fmt: skip


async def recommendations(customer_id: int, k: int = 5) -> list[Recommendation]:
    """Up to ``k`` products for the customer (co-purchase filtering; popularity when they have no orders yet).

    An unknown customer is an :class:`InputError` on ``customer_id``.
    """
    customer_id = _check_int(customer_id, "customer_id", -(2**31), 2**31 - 1)
    k = _check_int(k, "k", 1, MAX_RECOMMENDATIONS)
    if not await _fetch(_EXISTS, {"customer_id": customer_id}):
        raise InputError(f"no customer {customer_id}", field="customer_id")
    data = await analytics()
    if data.purchases.empty:
        return []
    if customer_id in set(data.purchases["customer_id"]):
        return await asyncio.to_thread(recommend, customer_id, data.purchases, k=k, products=data.products,
                                       as_of=data.as_of)  # fmt: skip
    return await asyncio.to_thread(popular_items, data.purchases, k=k, products=data.products, as_of=data.as_of)
