"""Fulfillment KPIs over a rolling window (``policy.kpis.window_days``, 30 days), computed in SQL.

Every KPI reads the current prediction of each order scored in the window (``predictions.updated_at``) and the
order as the pipeline received it (``order_inputs``):

- **segment risk**: mean P(late) and order count per warehouse block, shipping mode and product importance;
  a segment whose mean is above ``policy.kpis.segment_risk_alert`` is flagged (``alert``);
- **predicted on-time rate**: the share of orders whose P(late) is not above the policy's ``review_at``
  threshold (0.5: the order is predicted on time), per segment and overall, against
  ``policy.kpis.on_time_target_pct``; and the expected on-time rate, 100 x mean(1 - P(late));
- **actual on-time rate**: among orders with a delivery date and a promised date, the share delivered by the
  promised date;
- **high-risk orders**: orders whose severity (after the escalators) is critical;
- **fulfillment gap**: orders already shipped that are high risk (they will likely miss their window);
- **anomalies**: orders the anomaly detector flagged;
- **deviations** created in the window, by status, by severity and by both.

:func:`trend` gives segment risk day by day: the mean P(late) per segment of one dimension, by the order's date,
over the last ``window_days`` order dates of the orders scored in the window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from tools.deps import current

Dimension = Literal["warehouse_block", "mode_of_shipment", "product_importance"]
DIMENSIONS: tuple[Dimension, ...] = ("warehouse_block", "mode_of_shipment", "product_importance")

_WINDOW = """
WITH w AS (
    SELECT p.delay_probability AS p, p.severity, p.is_anomaly, oi.warehouse_block, oi.mode_of_shipment,
           oi.product_importance, oi.order_status,
           CASE WHEN pg_input_is_valid(oi.data->>'delivery_date', 'date')
                THEN (oi.data->>'delivery_date')::date END AS delivered,
           CASE WHEN pg_input_is_valid(oi.data->>'promised_delivery_date', 'date')
                THEN (oi.data->>'promised_delivery_date')::date END AS promised
    FROM predictions p LEFT JOIN order_inputs oi ON oi.order_id = p.order_id
    WHERE p.updated_at >= %(since)s
)
"""
_TOTALS = (
    _WINDOW
    + """
SELECT count(*) AS orders, avg(p) AS mean_p, 100.0 * avg((p <= %(on_time_at)s)::int) AS predicted_on_time_pct,
       100.0 * avg(1 - p) AS expected_on_time_pct,
       count(*) FILTER (WHERE severity = 'critical') AS high_risk,
       count(*) FILTER (WHERE is_anomaly) AS anomalies,
       count(*) FILTER (WHERE order_status = 'shipped') AS shipped,
       count(*) FILTER (WHERE order_status = 'shipped' AND severity = 'critical') AS shipped_high_risk,
       count(*) FILTER (WHERE delivered IS NOT NULL AND promised IS NOT NULL) AS delivered,
       count(*) FILTER (WHERE delivered <= promised) AS delivered_on_time
FROM w
"""
)
_SEGMENTS = (
    _WINDOW
    + """
SELECT CASE WHEN GROUPING(warehouse_block) = 0 THEN 'warehouse_block'
            WHEN GROUPING(mode_of_shipment) = 0 THEN 'mode_of_shipment' ELSE 'product_importance' END AS dimension,
       COALESCE(warehouse_block, mode_of_shipment, product_importance) AS segment,
       count(*) AS orders, avg(p) AS mean_p, 100.0 * avg((p <= %(on_time_at)s)::int) AS predicted_on_time_pct
FROM w
GROUP BY GROUPING SETS ((warehouse_block), (mode_of_shipment), (product_importance))
HAVING COALESCE(warehouse_block, mode_of_shipment, product_importance) IS NOT NULL
ORDER BY 1, 2
"""
)
_DEVIATIONS = """
SELECT status, severity, count(*) AS n FROM deviations WHERE created_at >= %(since)s GROUP BY status, severity
"""


class SegmentRisk(TypedDict):
    """One segment's risk over the window."""

    segment: str
    orders: int
    mean_delay_probability: float
    predicted_on_time_pct: float
    alert: bool
    below_target: bool


class OnTime(TypedDict):
    orders: int
    on_time: int
    on_time_pct: float | None


class FulfillmentGap(TypedDict):
    shipped_orders: int
    shipped_high_risk: int
    pct_of_shipped: float | None


class DeviationCounts(TypedDict):
    total: int
    by_status: dict[str, int]
    by_severity: dict[str, int]
    by_status_and_severity: dict[str, dict[str, int]]


class KpiDashboard(TypedDict):
    """The dashboard: what each number means is in the module docstring."""

    window_days: int
    since: str
    generated_at: str
    orders_scored: int
    mean_delay_probability: float | None
    predicted_on_time_pct: float | None
    expected_on_time_pct: float | None
    on_time_target_pct: float
    below_target: bool
    actual_on_time: OnTime
    high_risk_orders: int
    anomalies: int
    fulfillment_gap: FulfillmentGap
    segment_risk_alert: float
    segments: dict[str, list[SegmentRisk]]
    deviations: DeviationCounts


def _round(value: Any, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _segment(row: Mapping[str, Any], alert_at: float, target: float) -> SegmentRisk:
    mean = round(float(row["mean_p"]), 4)  # flags compare what is shown (0.6000000001 is not above 0.6)
    on_time = round(float(row["predicted_on_time_pct"]), 2)
    return SegmentRisk(
        segment=row["segment"],
        orders=int(row["orders"]),
        mean_delay_probability=mean,
        predicted_on_time_pct=on_time,
        alert=mean > alert_at,
        below_target=on_time < target,
    )


async def dashboard(window_days: int | None = None, pool: AsyncConnectionPool[Any] | None = None) -> KpiDashboard:
    """The KPIs of the last ``window_days`` days (the policy's window by default)."""
    deps = current()
    pool = pool or deps.pool
    policy = deps.policy
    days = window_days or policy.kpis.window_days
    on_time_at = getattr(policy.severity.thresholds, policy.severity.review_at)
    alert_at, target = policy.kpis.segment_risk_alert, policy.kpis.on_time_target_pct
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT now() AS now, now() - make_interval(days => %s::int) AS since", (days,))
        clock = await cur.fetchone()
        assert clock is not None
        params = {"since": clock["since"], "on_time_at": on_time_at}
        totals = await (await conn.execute(_TOTALS, params)).fetchone()
        segments = await (await conn.execute(_SEGMENTS, params)).fetchall()
        deviations = await (await conn.execute(_DEVIATIONS, params)).fetchall()
    assert totals is not None
    by_dimension: dict[str, list[SegmentRisk]] = {name: [] for name in DIMENSIONS}
    for row in segments:
        by_dimension[row["dimension"]].append(_segment(row, alert_at, target))
    counts = DeviationCounts(total=0, by_status={}, by_severity={}, by_status_and_severity={})
    for row in deviations:
        n = int(row["n"])
        counts["total"] += n
        counts["by_status"][row["status"]] = counts["by_status"].get(row["status"], 0) + n
        counts["by_severity"][row["severity"]] = counts["by_severity"].get(row["severity"], 0) + n
        counts["by_status_and_severity"].setdefault(row["status"], {})[row["severity"]] = n
    predicted = _round(totals["predicted_on_time_pct"], 2)
    return KpiDashboard(
        window_days=days,
        since=clock["since"].isoformat(),
        generated_at=clock["now"].isoformat(),
        orders_scored=int(totals["orders"]),
        mean_delay_probability=_round(totals["mean_p"]),
        predicted_on_time_pct=predicted,
        expected_on_time_pct=_round(totals["expected_on_time_pct"], 2),
        on_time_target_pct=target,
        below_target=predicted is not None and predicted < target,
        actual_on_time=OnTime(
            orders=int(totals["delivered"]),
            on_time=int(totals["delivered_on_time"]),
            on_time_pct=_pct(int(totals["delivered_on_time"]), int(totals["delivered"])),
        ),
        high_risk_orders=int(totals["high_risk"]),
        anomalies=int(totals["anomalies"]),
        fulfillment_gap=FulfillmentGap(
            shipped_orders=int(totals["shipped"]),
            shipped_high_risk=int(totals["shipped_high_risk"]),
            pct_of_shipped=_pct(int(totals["shipped_high_risk"]), int(totals["shipped"])),
        ),
        segment_risk_alert=alert_at,
        segments=by_dimension,
        deviations=counts,
    )


_TREND = """
WITH w AS (
    SELECT p.delay_probability AS p, oi.{dimension} AS segment,
           CASE WHEN pg_input_is_valid(oi.data->>'order_date', 'date') THEN (oi.data->>'order_date')::date END AS day
    FROM predictions p JOIN order_inputs oi ON oi.order_id = p.order_id
    WHERE p.updated_at >= now() - make_interval(days => %(days)s::int)
), last AS (SELECT max(day) AS day FROM w)
SELECT w.day, w.segment, count(*) AS orders, avg(w.p) AS mean_p
FROM w, last
WHERE w.day > last.day - %(days)s::int AND w.segment IS NOT NULL
GROUP BY w.day, w.segment ORDER BY w.day, w.segment
"""


class TrendSeries(TypedDict):
    """One segment's daily risk: lists aligned with :attr:`Trend.days` (None on a day without its orders)."""

    segment: str
    mean_delay_probability: list[float | None]
    orders: list[int]


class Trend(TypedDict):
    dimension: str
    window_days: int
    days: list[str]
    series: list[TrendSeries]


async def trend(dimension: Dimension, window_days: int | None = None,
                pool: AsyncConnectionPool[Any] | None = None) -> Trend:  # fmt: skip
    """Mean P(late) per ``dimension`` segment by order date, for the orders scored in the last ``window_days`` (the
    policy's window by default), over the last ``window_days`` order dates among them: every day from the first
    with orders to the last is listed."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}")
    deps = current()
    days = window_days or deps.policy.kpis.window_days
    query = sql.SQL(_TREND).format(dimension=sql.Identifier(dimension))
    async with (pool or deps.pool).connection() as conn:
        rows = await (await conn.execute(query, {"days": days})).fetchall()
    if not rows:
        return Trend(dimension=dimension, window_days=days, days=[], series=[])
    first: dt.date = min(r["day"] for r in rows)
    last: dt.date = max(r["day"] for r in rows)
    axis = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    at = {day: i for i, day in enumerate(axis)}
    series: dict[str, TrendSeries] = {}
    for row in rows:
        empty = TrendSeries(segment=row["segment"], mean_delay_probability=[None] * len(axis), orders=[0] * len(axis))
        line = series.setdefault(row["segment"], empty)
        line["mean_delay_probability"][at[row["day"]]] = _round(row["mean_p"])
        line["orders"][at[row["day"]]] = int(row["orders"])
    return Trend(dimension=dimension, window_days=days, days=[d.isoformat() for d in axis],
                 series=[series[k] for k in sorted(series)])  # fmt: skip
