"""The KPI dashboard and the daily segment trend against numbers computed by hand (and by a plain SQL query) on six
orders whose P(late) the test chooses (``discount_offered / 100``)."""

from __future__ import annotations

import pytest
from conftest import order, rows

from tools.deps import ToolDeps
from tools.kpis import dashboard, trend
from tools.scoring import score_records

ORDERS = [  # order id, block, mode, importance, P(late), status, promised, delivered, order value
    ("K1", "A", "Road", "high", 80, "shipped", "2026-10-25", None, None),
    ("K2", "A", "Ship", "low", 20, "delivered", "2026-10-25", "2026-10-24", None),
    ("K3", "B", "Road", "medium", 60, "delivered", "2026-10-25", "2026-10-27", None),
    ("K4", "B", "Flight", "high", 40, "shipped", "2026-10-25", None, None),
    ("K5", "C", "Ship", "low", 90, "shipped", None, None, None),
    ("K6", "C", "Road", "medium", 45, "processing", "2026-10-25", None, 700.0),
]


@pytest.fixture
async def scored(risk_deps: ToolDeps) -> ToolDeps:
    await score_records(
        [
            order(
                order_id=o,
                warehouse_block=b,
                mode_of_shipment=m,
                product_importance=i,
                discount_offered=p,
                order_status=s,
                promised_delivery_date=pr,
                delivery_date=d,
                order_value=v,
                cost_of_product=100.0,
            )
            for o, b, m, i, p, s, pr, d, v in ORDERS
        ],
        source="api",
    )
    return risk_deps


async def test_totals_match_the_hand_computed_values(scored: ToolDeps) -> None:
    kpi = await dashboard()
    assert kpi["window_days"] == 30 and kpi["orders_scored"] == 6
    assert kpi["mean_delay_probability"] == pytest.approx((0.8 + 0.2 + 0.6 + 0.4 + 0.9 + 0.45) / 6, abs=1e-4)
    assert kpi["predicted_on_time_pct"] == 50.0  # K2, K4, K6 are not above 0.5
    assert kpi["expected_on_time_pct"] == pytest.approx(100 * (1 - 3.35 / 6), abs=0.01)
    assert kpi["below_target"] is True and kpi["on_time_target_pct"] == 85
    assert kpi["actual_on_time"] == {"orders": 2, "on_time": 1, "on_time_pct": 50.0}  # K2 on time, K3 late
    assert kpi["high_risk_orders"] == 3  # K1, K5, and K6 raised by its order value
    assert kpi["fulfillment_gap"] == {"shipped_orders": 3, "shipped_high_risk": 2, "pct_of_shipped": 66.67}
    assert kpi["deviations"]["by_severity"] == {"critical": 3, "warning": 1, "info": 1}
    assert kpi["deviations"]["by_status"] == {"open": 5} and kpi["deviations"]["total"] == 5


async def test_segments_match_a_plain_sql_query_and_are_flagged_above_the_alert(scored: ToolDeps) -> None:
    kpi = await dashboard()
    for dimension in ("warehouse_block", "mode_of_shipment", "product_importance"):
        expected = await rows(
            scored.pool,
            f"SELECT oi.{dimension} AS segment, count(*) AS n, avg(p.delay_probability) AS mean "
            f"FROM predictions p JOIN order_inputs oi USING (order_id) GROUP BY 1 ORDER BY 1",
        )
        got = kpi["segments"][dimension]
        assert [(s["segment"], s["orders"]) for s in got] == [(r["segment"], r["n"]) for r in expected]
        assert [s["mean_delay_probability"] for s in got] == pytest.approx([r["mean"] for r in expected], abs=1e-4)
    blocks = {s["segment"]: s for s in kpi["segments"]["warehouse_block"]}
    assert [k for k, s in blocks.items() if s["alert"]] == ["C"]  # (0.9 + 0.45) / 2 = 0.675 > 0.6
    modes = {s["segment"]: s for s in kpi["segments"]["mode_of_shipment"]}
    assert modes["Road"]["alert"] is True and modes["Road"]["predicted_on_time_pct"] == pytest.approx(33.33, abs=0.01)
    importance = {s["segment"]: s for s in kpi["segments"]["product_importance"]}
    assert importance["high"]["alert"] is False  # exactly 0.6 is not above the alert level


async def test_the_window_keeps_only_recent_predictions(scored: ToolDeps) -> None:
    async with scored.pool.connection() as conn:
        await conn.execute("UPDATE predictions SET updated_at = now() - interval '40 days' WHERE order_id = 'K5'")
    kpi = await dashboard()
    assert kpi["orders_scored"] == 5 and kpi["high_risk_orders"] == 2
    assert (await dashboard(window_days=60))["orders_scored"] == 6


async def test_the_trend_gives_each_blocks_mean_risk_per_order_date_with_every_day_listed(scored: ToolDeps) -> None:
    async with scored.pool.connection() as conn:
        for order_id, day in (("K1", "2026-10-22"), ("K4", "2026-10-18")):
            await conn.execute("UPDATE order_inputs SET data = jsonb_set(data, '{order_date}', to_jsonb(%s::text)) "
                               "WHERE order_id = %s", (day, order_id))  # fmt: skip
        await conn.execute("UPDATE predictions SET updated_at = now() - interval '40 days' WHERE order_id = 'K5'")
    got = await trend("warehouse_block")
    assert got["days"] == ["2026-10-18", "2026-10-19", "2026-10-20", "2026-10-21", "2026-10-22"]
    assert got["series"] == [  # K5 (block C, 0.9) was scored before the window
        {"segment": "A", "mean_delay_probability": [None, None, 0.2, None, 0.8], "orders": [0, 0, 1, 0, 1]},
        {"segment": "B", "mean_delay_probability": [0.4, None, 0.6, None, None], "orders": [1, 0, 1, 0, 0]},
        {"segment": "C", "mean_delay_probability": [None, None, 0.45, None, None], "orders": [0, 0, 1, 0, 0]},
    ]
    modes = await trend("mode_of_shipment", window_days=60)
    road = next(s for s in modes["series"] if s["segment"] == "Road")
    assert road["mean_delay_probability"][2] == pytest.approx((0.6 + 0.45) / 2) and road["orders"][2] == 2
    with pytest.raises(ValueError, match="dimension must be one of"):
        await trend("carrier_name")  # type: ignore[arg-type]
