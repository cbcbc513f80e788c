"""What the specialists know about an order and its customer: :class:`OrderFacts` and :class:`CustomerHistory`.

An order is looked up in the seeded ``orders`` table first, else in ``order_inputs`` (orders the scoring pipeline
received under their upstream ids, customer refs such as ``"C00123"``), with its current prediction and deviation.

Amount paid: the seed stores ``order_value`` as what the customer paid (unit price x quantity, net of the
discount), and the refund policy computes every compensation on the amount paid, so ``amount_paid`` is
``order_value``. An upstream row without ``order_value`` is taken to have paid ``cost_of_product x quantity``
(1 when not given) net of ``discount_offered`` percent, the estimate the scoring pipeline's escalator uses.

Days late count from the promised date to the delivery date, or to ``now`` while undelivered (for a seeded order,
at most to the dataset's day); 0 when not late, or when the promised date is unknown.

A seeded customer's ref is its integer id as text (``"17"``); ledger rows carry both the integer id (when the
customer is seeded) and the text ref, so external customers work the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, LiteralString

from psycopg import AsyncConnection

from tools.deps import current

CANONICAL_FIELDS = (
    "warehouse_block",
    "mode_of_shipment",
    "customer_care_calls",
    "customer_rating",
    "cost_of_product",
    "prior_purchases",
    "product_importance",
    "gender",
    "discount_offered",
    "weight_in_gms",
)


@dataclass(frozen=True)
class OrderFacts:
    """One order as the tools and guardrails see it (no customer name, email or address)."""

    order_id: str
    customer_ref: str | None
    known: bool  # in the seeded orders table
    warehouse_block: str | None
    mode_of_shipment: str | None
    customer_care_calls: int | None
    customer_rating: int | None
    cost_of_product: float | None
    prior_purchases: int | None
    product_importance: str | None
    gender: str | None
    discount_offered: float | None
    weight_in_gms: float | None
    order_value: float | None
    amount_paid: float | None  # what the customer paid: order_value (net of discount), see the module docstring
    weight_kg: float | None
    days_late: int  # promised date -> delivery date (or today while undelivered); 0 when not late
    customer_id: int | None = None  # the seeded customer's integer id (None for external customers)
    order_date: date | None = None
    promised_delivery_date: date | None = None
    ship_date: date | None = None
    delivery_date: date | None = None
    carrier_name: str | None = None
    payment_status: str | None = None
    order_status: str | None = None
    delay_probability: float | None = None  # from the current prediction, when scored
    severity: str | None = None  # the deviation's (escalated) severity, else the prediction's
    top_features: tuple[dict[str, Any], ...] = ()
    model_version: str | None = None
    anomaly_score: float | None = None
    deviation_id: str | None = None
    deviation_status: str | None = None
    block_backlog_hours: float | None = None  # unshipped orders of the block / its daily capacity, in hours
    as_of: date | None = None  # the day days_late was counted on (a seeded order: at most the dataset's day)

    @property
    def delivered(self) -> bool:
        return self.delivery_date is not None or self.order_status == "delivered"

    @property
    def shipped(self) -> bool:
        return self.delivered or self.ship_date is not None or self.order_status in ("shipped", "delayed")


@dataclass(frozen=True)
class CustomerHistory:
    """What was already done for this customer and order (read before proposing more)."""

    customer_ref: str | None
    order_id: str
    apologies_in_window: int  # apologies sent or queued to this customer within communication.apology.window_hours
    last_apology_at: datetime | None
    compensations_on_order: int  # refunds + store credits already recorded on this order
    compensation_usd_on_order: float
    refunds_on_order: int
    store_credits_on_order: int
    previous_deviations: int  # deviations on this customer's other orders
    resolved_deviations: int  # ... of which resolved
    care_calls: int  # customer care calls about this order
    upgrades_on_order: int = 0  # shipping upgrades / priority handling already booked on this order
    tickets_on_order: int = 0
    interactions_on_order: int = 0
    notifications_on_order: int = 0
    window_hours: int = 0
    compensation_requests_in_window: int = 0  # refunds + store credits to this customer in fraud_review.window_days


def utc_now() -> datetime:
    return datetime.now(UTC)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None else round(number)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        return None


def days_late(promised: date | None, delivered: date | None, today: date) -> int:
    """Whole days after the promised date (delivery date, or today while undelivered); 0 when not late."""
    if promised is None:
        return 0
    return max(0, ((delivered or today) - promised).days)


def _paid(order_value: float | None, cost: float | None, discount: float | None, quantity: int | None) -> float | None:
    if order_value is not None:
        return round(order_value, 2)
    if cost is None:
        return None
    return round(cost * (quantity or 1) * (1 - (discount or 0.0) / 100), 2)


async def _one(
    conn: AsyncConnection[Any], query: LiteralString, params: tuple[Any, ...] | dict[str, Any]
) -> dict[str, Any] | None:
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return dict(row) if row is not None else None


async def _backlog_hours(conn: AsyncConnection[Any], block: str | None) -> float | None:
    policy = current().policy
    if block is None or block not in policy.warehouses.blocks:
        return None
    row = await _one(
        conn,
        """SELECT (SELECT count(*) FROM orders WHERE warehouse_block = %(b)s AND order_status = 'processing')
                + (SELECT count(*) FROM order_inputs WHERE NOT known_order AND data->>'warehouse_block' = %(b)s
                      AND data->>'order_status' = 'processing') AS waiting""",
        {"b": block},
    )
    waiting = int(row["waiting"]) if row else 0
    return round(waiting / policy.warehouses.blocks[block].daily_capacity_orders * 24, 2)


def _seeded_fields(row: dict[str, Any]) -> dict[str, Any]:
    fields = {name: row.get(name) for name in CANONICAL_FIELDS}
    fields.update(
        {
            k: row.get(k)
            for k in (
                "order_date",
                "promised_delivery_date",
                "ship_date",
                "delivery_date",
                "carrier_name",
                "order_value",
                "payment_status",
                "order_status",
            )
        }
    )
    return fields


async def get_order(order_id: str, *, now: datetime | None = None) -> OrderFacts | None:
    """The order's facts (seeded ``orders`` first, else ``order_inputs``), or None when nobody knows it.

    ``now`` (default: the clock, UTC) is the day days late are counted to while the order is undelivered. The
    seeded orders are a snapshot taken on the dataset's day (``dataset_info.as_of``): for them "today" is never
    later than that day, so an order the snapshot shows in transit is not counted late for the months since.
    """
    today = (now or utc_now()).date()
    async with current().pool.connection() as conn:
        row = await _one(conn, "SELECT * FROM orders WHERE order_id = %s", (order_id,))
        known = row is not None
        customer_id: int | None = None
        if row is not None:
            snapshot = await _one(conn, "SELECT as_of FROM dataset_info", ())
            if snapshot is not None and snapshot["as_of"] is not None:
                today = min(today, snapshot["as_of"])
            fields = _seeded_fields(row)
            customer_id = int(row["customer_id"])
            customer_ref: str | None = str(customer_id)
        else:
            row = await _one(conn, "SELECT customer_ref, data FROM order_inputs WHERE order_id = %s", (order_id,))
            if row is None:
                return None
            data = row["data"] if isinstance(row["data"], dict) else {}
            fields = dict(data)
            customer_ref = _text(row["customer_ref"]) or _text(data.get("customer_ref") or data.get("customer_id"))
        prediction = await _one(
            conn,
            "SELECT delay_probability, severity, top_features, model_version, anomaly_score "
            "FROM predictions WHERE order_id = %s",
            (order_id,),
        )
        deviation = await _one(
            conn, "SELECT deviation_id, severity, status FROM deviations WHERE order_id = %s", (order_id,)
        )
        block = _text(fields.get("warehouse_block"))
        block = block.upper() if block else None
        backlog = await _backlog_hours(conn, block)
    return _facts(order_id, customer_ref, customer_id, known, fields, prediction, deviation, backlog, today)


def _facts(
    order_id: str,
    customer_ref: str | None,
    customer_id: int | None,
    known: bool,
    f: dict[str, Any],
    prediction: dict[str, Any] | None,
    deviation: dict[str, Any] | None,
    backlog: float | None,
    today: date,
) -> OrderFacts:
    cost, discount = _float(f.get("cost_of_product")), _float(f.get("discount_offered"))
    weight = _float(f.get("weight_in_gms"))
    order_value = _float(f.get("order_value"))
    paid = _paid(order_value, cost, discount, _int(f.get("quantity")))
    promised, delivered = _date(f.get("promised_delivery_date")), _date(f.get("delivery_date"))
    mode = _text(f.get("mode_of_shipment"))
    importance = _text(f.get("product_importance"))
    block = _text(f.get("warehouse_block"))
    features = prediction.get("top_features") if prediction else None
    return OrderFacts(
        order_id=order_id,
        customer_ref=customer_ref,
        known=known,
        customer_id=customer_id,
        warehouse_block=block.upper() if block else None,
        mode_of_shipment=mode.capitalize() if mode else None,
        customer_care_calls=_int(f.get("customer_care_calls")),
        customer_rating=_int(f.get("customer_rating")),
        cost_of_product=cost,
        prior_purchases=_int(f.get("prior_purchases")),
        product_importance=importance.lower() if importance else None,
        gender=_text(f.get("gender")),
        discount_offered=discount,
        weight_in_gms=weight,
        order_value=order_value if order_value is not None else paid,
        amount_paid=paid,
        weight_kg=round(weight / 1000, 3) if weight is not None else None,
        days_late=days_late(promised, delivered, today),
        order_date=_date(f.get("order_date")),
        promised_delivery_date=promised,
        ship_date=_date(f.get("ship_date")),
        delivery_date=delivered,
        carrier_name=_text(f.get("carrier_name")),
        payment_status=(_text(f.get("payment_status")) or "").lower() or None,
        order_status=(_text(f.get("order_status")) or "").lower() or None,
        delay_probability=_float(prediction["delay_probability"]) if prediction else None,
        severity=(deviation or prediction or {}).get("severity"),
        top_features=tuple(x for x in features if isinstance(x, dict)) if isinstance(features, list) else (),
        model_version=prediction.get("model_version") if prediction else None,
        anomaly_score=_float(prediction.get("anomaly_score")) if prediction else None,
        deviation_id=str(deviation["deviation_id"]) if deviation else None,
        deviation_status=deviation.get("status") if deviation else None,
        block_backlog_hours=backlog,
        as_of=today,
    )


_HISTORY_SQL = """
SELECT
  (SELECT count(*) FROM notifications
     WHERE customer_ref = %(ref)s AND kind = 'apology' AND status <> 'cancelled'
       AND coalesce(send_after, created_at) > %(since)s) AS apologies,
  (SELECT max(coalesce(send_after, created_at)) FROM notifications
     WHERE customer_ref = %(ref)s AND kind = 'apology' AND status <> 'cancelled') AS last_apology,
  (SELECT count(*) FROM refunds WHERE order_id = %(order)s) AS refunds,
  (SELECT coalesce(sum(amount), 0) FROM refunds WHERE order_id = %(order)s) AS refund_usd,
  (SELECT count(*) FROM store_credits WHERE order_id = %(order)s) AS credits,
  (SELECT coalesce(sum(amount), 0) FROM store_credits WHERE order_id = %(order)s) AS credit_usd,
  (SELECT count(*) FROM shipment_changes
     WHERE order_id = %(order)s AND change_type IN ('mode_upgrade', 'priority_handling')) AS upgrades,
  (SELECT count(*) FROM tickets WHERE order_id = %(order)s) AS tickets,
  (SELECT count(*) FROM interactions WHERE order_id = %(order)s) AS interactions,
  (SELECT count(*) FROM notifications WHERE order_id = %(order)s) AS notifications,
  (SELECT (SELECT count(*) FROM refunds WHERE customer_ref = %(ref)s AND created_at > %(fraud_since)s)
        + (SELECT count(*) FROM store_credits WHERE customer_ref = %(ref)s AND created_at > %(fraud_since)s))
     AS requests,
  (SELECT coalesce(max(customer_care_calls), 0) FROM orders WHERE order_id = %(order)s) AS seeded_calls,
  (SELECT coalesce(max((data->>'customer_care_calls')::numeric), 0) FROM order_inputs
     WHERE order_id = %(order)s AND data->>'customer_care_calls' ~ '^[0-9]+(\\.[0-9]+)?$') AS input_calls
"""

_DEVIATIONS_SQL = """
WITH customer_orders AS (
  SELECT order_id FROM orders WHERE customer_id = %(ref_int)s
  UNION
  SELECT order_id FROM order_inputs WHERE customer_ref = %(ref)s
)
SELECT count(*) AS previous, count(*) FILTER (WHERE d.status = 'resolved') AS resolved
FROM deviations d JOIN customer_orders c USING (order_id)
WHERE d.order_id <> %(order)s
"""


async def customer_history(customer_ref: str | None, order_id: str, *, now: datetime) -> CustomerHistory:
    """What was already done for this customer (apologies in the window, other deviations) and this order."""
    policy = current().policy
    window = policy.communication.apology.window_hours
    ref = customer_ref or ""
    ref_int = int(ref) if ref.isdigit() and len(ref) <= 9 else None
    fraud_since = now - timedelta(days=policy.fraud_review.window_days)
    params = {
        "ref": ref,
        "ref_int": ref_int,
        "order": order_id,
        "since": now - timedelta(hours=window),
        "fraud_since": fraud_since,
    }
    async with current().pool.connection() as conn:
        row = await _one(conn, _HISTORY_SQL, params)
        deviations = await _one(conn, _DEVIATIONS_SQL, params) if customer_ref else {"previous": 0, "resolved": 0}
    assert row is not None and deviations is not None
    refunds, credits = int(row["refunds"]), int(row["credits"])
    return CustomerHistory(
        customer_ref=customer_ref,
        order_id=order_id,
        apologies_in_window=int(row["apologies"]) if customer_ref else 0,
        last_apology_at=row["last_apology"] if customer_ref else None,
        compensations_on_order=refunds + credits,
        compensation_usd_on_order=round(float(row["refund_usd"]) + float(row["credit_usd"]), 2),
        refunds_on_order=refunds,
        store_credits_on_order=credits,
        previous_deviations=int(deviations["previous"]),
        resolved_deviations=int(deviations["resolved"]),
        care_calls=int(max(row["seeded_calls"], row["input_calls"])),
        upgrades_on_order=int(row["upgrades"]),
        tickets_on_order=int(row["tickets"]),
        interactions_on_order=int(row["interactions"]),
        notifications_on_order=int(row["notifications"]),
        window_hours=window,
        compensation_requests_in_window=int(row["requests"]) if customer_ref else 0,
    )


class OrderNotFound(LookupError):
    """No seeded order and no order received by the scoring pipeline has this id."""


async def require_order(order_id: str, *, now: datetime | None = None) -> OrderFacts:
    """:func:`get_order`, raising :class:`OrderNotFound` (naming the id) when nobody knows the order."""
    facts = await get_order(order_id, now=now)
    if facts is None:
        raise OrderNotFound(f"order_id: no order {order_id!r} (neither seeded nor received by the scoring pipeline)")
    return facts
