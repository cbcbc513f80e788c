"""``/ui/deviations``: the fulfillment KPIs of the rolling window, charted, and the deviation list with filters.

Everything shown comes from ``GET /kpi/dashboard`` (severity counts, predicted, expected and actual on-time rates
against the policy's target, segment risk by warehouse block, shipping mode and product importance over the
window, with the policy's alert line), ``GET /kpi/trend`` (mean risk per warehouse block by order date) and
``GET /deviations`` (filters by severity, status, block, mode and order, paged). Each order id links to its order
page (:mod:`server.console.orders`).
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from server.console.api import Refused, Session, call
from server.console.layout import Paged, frame, require_session, severity_badge, tile
from server.console.upload import deviation_table

SEVERITIES = ["critical", "warning", "info"]
STATUSES = ["open", "in_progress", "awaiting_approval", "resolved", "escalated", "dismissed"]
BLOCKS = ["A", "B", "C", "D", "E", "F"]
MODES = ["Flight", "Road", "Ship"]
DIMENSIONS = {"warehouse_block": "Warehouse block", "mode_of_shipment": "Shipping mode",
              "product_importance": "Product importance"}  # fmt: skip


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.1f} %"


def segment_chart(dimension: str, segments: list[dict[str, Any]], alert_at: float) -> None:
    """Mean P(late) per segment as bars (red above the policy's alert line), the order counts in the labels."""
    names = [f"{s['segment']} ({s['orders']:,})" for s in segments]
    bars = [{"value": round(s["mean_delay_probability"], 3), "itemStyle": {"color": "#c62828" if s["alert"]
             else "#1976d2"}} for s in segments]  # fmt: skip
    ui.echart({
        "animation": False,
        "title": {"text": DIMENSIONS[dimension], "textStyle": {"fontSize": 13}},
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 40, "right": 30, "top": 40, "bottom": 40},
        "xAxis": {"type": "category", "data": names},
        "yAxis": {"type": "value", "min": 0, "max": 1, "name": "mean P(late)"},
        "series": [{"type": "bar", "data": bars, "name": "mean P(late)",
                    "markLine": {"symbol": "none", "data": [{"yAxis": alert_at, "name": "alert"}],
                                 "lineStyle": {"color": "#c62828", "type": "dashed"}}}],
    }).classes("w-full h-64")  # fmt: skip


def on_time_chart(kpis: dict[str, Any]) -> None:
    """Predicted, expected and actual on-time rates against the target."""
    values = [kpis.get("predicted_on_time_pct"), kpis.get("expected_on_time_pct"),
              (kpis.get("actual_on_time") or {}).get("on_time_pct")]  # fmt: skip
    ui.echart({
        "animation": False,
        "title": {"text": "On-time rate", "textStyle": {"fontSize": 13}},
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 40, "right": 30, "top": 40, "bottom": 40},
        "xAxis": {"type": "category", "data": ["predicted", "expected", "actual"]},
        "yAxis": {"type": "value", "min": 0, "max": 100, "name": "%"},
        "series": [{"type": "bar", "data": [None if v is None else round(float(v), 1) for v in values],
                    "markLine": {"symbol": "none", "data": [{"yAxis": kpis["on_time_target_pct"], "name": "target"}],
                                 "lineStyle": {"color": "#2e7d32", "type": "dashed"}}}],
    }).classes("w-full h-64")  # fmt: skip


def trend_chart(trend: dict[str, Any]) -> None:
    """Mean P(late) by order date, one line per warehouse block."""
    days = trend.get("days") or []
    ui.echart({
        "animation": False,
        "title": {"text": "Risk by warehouse block over the window", "textStyle": {"fontSize": 13}},
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 26},
        "grid": {"left": 40, "right": 30, "top": 70, "bottom": 40},
        "xAxis": {"type": "category", "data": days},
        "yAxis": {"type": "value", "min": 0, "max": 1, "name": "mean P(late)"},
        "series": [{"type": "line", "name": f"block {s['segment']}", "connectNulls": True,
                    "data": [None if v is None else round(v, 3) for v in s["mean_delay_probability"]]}
                   for s in trend.get("series") or []],
    }).classes("w-full h-72")  # fmt: skip


async def kpi_section(signed_in: Session) -> None:
    try:
        kpis = await call(signed_in, "GET", "/kpi/dashboard")
        trend = await call(signed_in, "GET", "/kpi/trend", params={"dimension": "warehouse_block"})
    except Refused as exc:
        ui.label(f"The server refused: {exc.message}").classes("text-negative")
        return
    counts = kpis["deviations"]
    ui.label(f"Last {kpis['window_days']} days").classes("text-subtitle1")
    with ui.row().classes("gap-3"):
        tile("orders scored", f"{kpis['orders_scored']:,}")
        tile("predicted on time", _pct(kpis["predicted_on_time_pct"]), f"target {kpis['on_time_target_pct']:g} %",
              alert=bool(kpis["below_target"]))  # fmt: skip
        actual = kpis["actual_on_time"]
        tile("actually on time", _pct(actual["on_time_pct"]), f"of {actual['orders']:,} delivered")
        tile("high-risk orders", f"{kpis['high_risk_orders']:,}")
        gap = kpis["fulfillment_gap"]
        tile("shipped and high risk", f"{gap['shipped_high_risk']:,}", f"{_pct(gap['pct_of_shipped'])} of shipped")
        tile("anomalies", f"{kpis['anomalies']:,}")
    with ui.row().classes("gap-2 items-center"):
        ui.label(f"{counts['total']:,} deviations:").classes("text-subtitle2")
        for level in SEVERITIES:
            severity_badge(level, f"{counts['by_severity'].get(level, 0):,} {level}")
        for status, n in sorted(counts["by_status"].items()):
            ui.badge(f"{n:,} {status.replace('_', ' ')}", color="grey-7")
    with ui.grid(columns=2).classes("w-full gap-2"):
        on_time_chart(kpis)
        for dimension in DIMENSIONS:
            segment_chart(dimension, kpis["segments"].get(dimension) or [], kpis["segment_risk_alert"])
    trend_chart(trend)


class DeviationList(Paged):
    """The filtered, paged deviation list."""

    def __init__(self, signed_in: Session) -> None:
        self.session = signed_in
        with ui.row().classes("gap-2 items-center"):
            self.severity = ui.select(SEVERITIES, multiple=True, label="severity").props("dense outlined use-chips")
            self.status = ui.select(STATUSES, multiple=True, label="status").props("dense outlined use-chips")
            self.block = ui.select(BLOCKS, label="block", clearable=True).props("dense outlined").classes("w-24")
            self.mode = ui.select(MODES, label="mode", clearable=True).props("dense outlined").classes("w-28")
            self.order = ui.input("order id").props("dense outlined clearable").classes("w-40")
            for field in (self.severity, self.status, self.block, self.mode):
                field.classes("min-w-32").on_value_change(self.first_page)
            self.order.on("keydown.enter", self.first_page)
        self.area = ui.column().classes("w-full gap-1")

    def params(self) -> dict[str, Any]:
        chosen: dict[str, Any] = {"severity": self.severity.value or None, "status": self.status.value or None,
                                  "warehouse_block": self.block.value, "mode_of_shipment": self.mode.value,
                                  "order_id": (self.order.value or "").strip() or None}  # fmt: skip
        return {k: v for k, v in chosen.items() if v} | {"limit": self.size, "offset": self.offset}

    async def load(self) -> None:
        self.area.clear()
        with self.area:
            try:
                page = await call(self.session, "GET", "/deviations", params=self.params())
            except Refused as exc:
                ui.label(f"The server refused: {exc.message}").classes("text-negative")
                return
            self.pager(page["total"])
            deviation_table(page["items"])


@ui.page("/deviations")
async def deviations_page() -> None:
    signed_in = await require_session()
    if signed_in is None:
        return
    with frame("Deviations and KPIs", signed_in):
        await kpi_section(signed_in)
        ui.separator()
        ui.label("Deviations").classes("text-h6")
        listing = DeviationList(signed_in)
        await listing.load()

