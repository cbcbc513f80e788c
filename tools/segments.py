"""The KPI context of one order: how its warehouse block, shipping mode and importance fared over the window.

The deviation workflow's ``assess`` step gives specialists this context (is the whole block late, or only this
order?). Figures are over the orders scored within ``kpis.window_days`` (seeded orders and external ones alike),
and a segment whose mean delay probability is above ``kpis.segment_risk_alert`` is flagged.
"""

from __future__ import annotations

from typing import Any

from tools.deps import current

_SEGMENTS = """
WITH scored AS (
    SELECT p.delay_probability, p.severity,
           coalesce(o.warehouse_block, upper(i.data->>'warehouse_block')) AS warehouse_block,
           coalesce(o.mode_of_shipment, initcap(i.data->>'mode_of_shipment')) AS mode_of_shipment,
           coalesce(o.product_importance, lower(i.data->>'product_importance')) AS product_importance
    FROM predictions p
    LEFT JOIN orders o ON o.order_id = p.order_id
    LEFT JOIN order_inputs i ON i.order_id = p.order_id
    WHERE p.updated_at > now() - make_interval(days => %(days)s)
)
SELECT 'warehouse_block' AS segment, %(block)s AS value, count(*) AS orders, avg(delay_probability) AS mean_risk,
       count(*) FILTER (WHERE severity = 'critical') AS critical
FROM scored WHERE warehouse_block = %(block)s
UNION ALL
SELECT 'mode_of_shipment', %(mode)s, count(*), avg(delay_probability), count(*) FILTER (WHERE severity = 'critical')
FROM scored WHERE mode_of_shipment = %(mode)s
UNION ALL
SELECT 'product_importance', %(importance)s, count(*), avg(delay_probability),
       count(*) FILTER (WHERE severity = 'critical')
FROM scored WHERE product_importance = %(importance)s
"""


async def segment_context(block: str | None, mode: str | None, importance: str | None) -> dict[str, Any]:
    """``{window_days, alert_above, segments: [{segment, value, orders, mean_delay_probability, critical,
    flagged}]}`` for the order's three segments."""
    deps = current()
    kpis = deps.policy.kpis
    async with deps.pool.connection() as conn:
        cur = await conn.execute(_SEGMENTS, {"days": kpis.window_days, "block": block, "mode": mode,
                                             "importance": importance})  # fmt: skip
        rows = await cur.fetchall()
    segments = []
    for row in rows:
        mean = float(row["mean_risk"]) if row["mean_risk"] is not None else None
        segments.append({
            "segment": row["segment"], "value": row["value"], "orders": int(row["orders"]),
            "mean_delay_probability": round(mean, 4) if mean is not None else None, "critical": int(row["critical"]),
            "flagged": mean is not None and mean > kpis.segment_risk_alert,
        })  # fmt: skip
    return {"window_days": kpis.window_days, "alert_above": kpis.segment_risk_alert, "segments": segments}
