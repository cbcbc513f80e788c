"""``/ui/plans/{plan_id}``: one store plan, read and decided.

``/plans/{plan_id}`` shows one plan (``GET /plans/{id}``): its totals, the reflection's confidence and risks, the
lines table and, per line, a chart (``GET /plans/{id}/series``): the recent sales, the P50 forecast with its P90
band and the stock projected with and without the line's order (the first lines open; the others build their chart
when opened, so a 50-line plan loads as fast as a short one). While the plan waits, approvers get an edit form
per line (order quantity and discount, bounded as the server bounds them; an edited quantity redraws the projection)
and Approve (with a comment) / Reject (with a reason): ``POST /plans/{id}/approve`` | ``/reject``. The server judges,
and its refusal is shown word for word; other roles see why there are no controls. The event timeline is
``GET /plans/{id}/events``.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

from nicegui import ui

from server.console.api import Refused, Session, call
from server.console.layout import frame, require_session, tile, when
from server.console.plans import STATUSES, is_whole, status_badge, usd
from tools.planning import project_stock

SEVERITY_COLORS = {"high": "negative", "medium": "orange", "low": "blue"}
HISTORY_DAYS = 28
"""Days of sales shown before a plan's forecast in its charts."""
OPENED = 4
"""Lines shown open (chart and edit form) when a plan opens; the others build theirs when opened."""
EVENT_ICONS = {"created": "add_circle", "data_analysis": "insights", "inventory_analysis": "inventory_2",
               "marketing_analysis": "campaign", "supervisor_decision": "fact_check", "reflection": "psychology",
               "final_decision": "pending_actions", "approved": "check_circle", "rejected": "cancel",
               "finalized": "done_all", "closed": "block"}  # fmt: skip
TOOLTIP = ("ps => [ps[0].axisValueLabel].concat(ps.filter(p => p.value != null).map(p => p.marker + p.seriesName + "
           "': ' + (p.data && p.data.p90 !== undefined ? p.data.p90 : p.value))).join('<br/>')")  # fmt: skip
"""The chart's tooltip: the P90 band is stacked on the P50 (its values are P90 - P50), so it shows the P90 itself."""


def chart_options(line: dict[str, Any], quantity: int) -> dict[str, Any]:
    """Sales before the plan (bars), the P50 forecast with its P90 band, and the stock projected under P50 demand
    with ``quantity`` ordered (and without the order), on the right axis."""
    history, forecast, stock = line["history"], line["forecast"], line["stock"]
    gap, days = [None] * len(history["dates"]), len(forecast["dates"])
    p50, p90 = forecast["p50"], forecast["p90"]
    projected = project_stock(stock["start"], p50, stock["arrives_at"], quantity)
    marks = [{"xAxis": forecast["dates"][0], "label": {"formatter": "plan starts"}}]
    if quantity and 0 < stock["arrives_at"] < days:
        marks.append({"xAxis": stock["arrives_on"], "label": {"formatter": "order arrives"}})
    return {
        "animation": False,
        "tooltip": {"trigger": "axis", ":formatter": TOOLTIP},
        "legend": {"bottom": 0, "itemWidth": 14, "itemHeight": 8, "textStyle": {"fontSize": 11}},
        "grid": {"left": 40, "right": 44, "top": 26, "bottom": 50},
        "xAxis": {"type": "category", "data": history["dates"] + forecast["dates"],
                  "axisLabel": {":formatter": "v => v.slice(5)", "fontSize": 10}},
        "yAxis": [{"type": "value", "name": "units / day", "nameTextStyle": {"fontSize": 10}},
                  {"type": "value", "name": "stock", "nameTextStyle": {"fontSize": 10}, "splitLine": {"show": False}}],
        "series": [
            {"type": "bar", "name": "sold", "data": history["units"] + [None] * days, "itemStyle": {"color": "#b0bec5"},
             "barCategoryGap": "20%"},
            {"type": "line", "name": "P50", "data": gap + p50, "stack": "band", "symbol": "none",
             "lineStyle": {"color": "#1565c0", "width": 2}, "itemStyle": {"color": "#1565c0"},
             "markLine": {"symbol": "none", "silent": True, "data": marks, "lineStyle": {"color": "#757575"},
                          "label": {"position": "insideEndTop", "fontSize": 10, "color": "#616161"}}},
            {"type": "line", "name": "P90", "stack": "band", "symbol": "none", "lineStyle": {"opacity": 0},
             "areaStyle": {"color": "rgba(21, 101, 192, 0.18)"}, "itemStyle": {"color": "rgba(21, 101, 192, 0.35)"},
             "data": gap + [{"value": round(hi - lo, 3), "p90": hi} for lo, hi in zip(p50, p90, strict=True)]},
            {"type": "line", "name": "stock (right)", "yAxisIndex": 1, "data": gap + projected, "symbol": "none",
             "lineStyle": {"color": "#2e7d32", "width": 2}, "itemStyle": {"color": "#2e7d32"}},
            {"type": "line", "name": "without order", "yAxisIndex": 1, "data": gap + stock["without_order"],
             "symbol": "none", "lineStyle": {"color": "#c62828", "type": "dashed"}, "itemStyle": {"color": "#c62828"}},
        ],
    }  # fmt: skip


class LineEdit:
    """One line's card: its figures and, once opened (the first lines are), its chart and, for an approver of a
    waiting plan, its edit form. A line never opened is not edited."""

    def __init__(self, line: dict[str, Any], series: dict[str, Any], editable: bool, opened: bool) -> None:
        self.line, self.series, self.editable = line, series, editable
        self.quantity: ui.number | None = None
        self.discount: ui.number | None = None
        with ui.card().classes("w-full gap-0 p-0").props("flat bordered"):
            self.body = ui.expansion(value=opened, on_value_change=self.build).classes("w-full")
            with self.body.add_slot("header"), ui.column().classes("w-full gap-1 py-1"):
                ui.label(f"{line['item_id']} · {line['name']}").classes("text-subtitle1")
                with ui.row().classes("gap-1 items-center"):
                    ordered = series["stock"]["order_qty"]
                    ui.badge(f"order {ordered:,}" + (f" · arrives {series['stock']['arrives_on']}" if ordered else ""),
                             color="primary" if ordered else "grey")  # fmt: skip
                    if line["recommended_discount"]:
                        ui.badge(f"discount {100 * line['recommended_discount']:g} %", color="purple")
                    ui.badge(f"stock-out risk {line['stockout_risk']:.0%}", color="negative"
                             if line["stockout_risk"] > 0.15 else "positive")  # fmt: skip
                    ui.badge(f"forecast: {series['forecast']['source']}", color="grey-7")
        self.built = False
        if opened:
            self.build()

    def build(self) -> None:
        """The chart, the edit form and the reasons, the first time the line is opened."""
        if self.built:
            return
        self.built = True
        line, series, limits = self.line, self.series, self.series["limits"]
        with self.body, ui.column().classes("w-full gap-1 px-3 pb-2"):
            self.chart = ui.echart(chart_options(series, series["stock"]["order_qty"])).classes("w-full h-60")
            if self.editable:
                with ui.row().classes("items-start gap-2"):
                    top = int(limits["max_order_qty"])
                    self.quantity = ui.number("Order qty", value=line["recommended_order_qty"], step=1,
                                              on_change=self.redraw, validation={
                                                  f"0 to {top:,} units (0 drops it)": lambda v: is_whole(v, 0, top)}
                                              ).props("outlined dense").classes("plan-qty w-40")  # fmt: skip
                    deepest = round(100 * float(limits["max_discount"]), 1)
                    self.discount = ui.number("Discount (%)", value=round(100 * line["recommended_discount"], 1),
                                              step=1, validation={f"0 to {deepest:g} %":
                                              lambda v: v is not None and 0 <= v <= deepest}
                                              ).props("outlined dense").classes("w-36")  # fmt: skip
                    if not top:
                        self.quantity.disable()
                        self.quantity.tooltip("The plan orders nothing for this item: only a proposed order is edited")
                    if not deepest:
                        self.discount.disable()
                        self.discount.tooltip("The plan has no promotion for this item: only a proposed one is edited")
                    self.cost = ui.label(f"cost {usd(line['cost'])}").classes("text-caption mt-2")
            with ui.expansion("Why", icon="help_outline").classes("w-full text-body2").props("dense"):
                ui.label(str(line["rationale"])).classes("text-body2")
                ui.label(f"forecast: {series['forecast']['note']}").classes("text-caption")

    def redraw(self) -> None:
        """The stock projection (and the cost) for the quantity typed, while it is in bounds."""
        if self.quantity is None or not self.quantity.validate():
            return
        quantity = int(self.quantity.value or 0)
        stock = self.series["stock"]
        gap = [None] * len(self.series["history"]["dates"])
        self.chart.options["series"][3]["data"] = gap + project_stock(stock["start"], self.series["forecast"]["p50"],
                                                                      stock["arrives_at"], quantity)  # fmt: skip
        self.chart.update()
        self.cost.set_text(f"cost {usd(quantity * float(self.line['unit_cost']))}")

    def edit(self) -> dict[str, Any] | None:
        """This line's change as the API takes it (None when unchanged); ValueError when out of bounds."""
        if self.quantity is None or self.discount is None:
            return None
        if not (self.quantity.validate() & self.discount.validate()):
            raise ValueError(f"item {self.line['item_id']}: an edit is out of bounds (see its field)")
        out: dict[str, Any] = {}
        if int(self.quantity.value or 0) != self.line["recommended_order_qty"]:
            out["order_qty"] = int(self.quantity.value or 0)
        if round(float(self.discount.value or 0), 1) != round(100 * self.line["recommended_discount"], 1):
            out["discount"] = round(float(self.discount.value or 0) / 100, 4)
        return {"item_id": self.line["item_id"], **out} if out else None


def event_text(event: dict[str, Any]) -> str:
    """One line saying what an event of the plan did, from its payload."""
    kind, payload = event["event_type"], event.get("payload") or {}
    analyses = payload.get("analyses") or {}
    if analyses:
        return "; ".join(str(a.get("summary")) for a in analyses.values())
    if kind == "created":
        store = payload.get("store") or {}
        return (f"{store.get('name', 'store')}: {len(payload.get('items') or [])} item(s), horizon "
                f"{payload.get('horizon_days')} d, lead time {(payload.get('constraints') or {}).get('lead_time_days')}"
                f" d, budget {usd(payload.get('budget'))}")  # fmt: skip
    if kind in ("supervisor_decision", "final_decision"):
        s = payload.get("summary") or {}
        return f"{s.get('orders')} order(s) for {usd(s.get('total_cost'))} of {usd(s.get('budget'))}, " \
               f"{s.get('promotions')} promotion(s)"  # fmt: skip
    if kind == "reflection":
        return str((payload.get("reflection") or {}).get("rationale") or "")
    if kind in ("approved", "rejected"):
        edits = sum(1 for d in payload.get("decisions") or [] if d.get("type") == "edit")
        said = f"“{payload['comment']}”" if payload.get("comment") else "no comment"
        return said + (f"; {edits} line(s) edited" if edits else "")
    outcome = payload.get("outcome") or {}
    if outcome:
        written = [a for a in outcome.get("actions") or [] if a.get("outcome") == "written"]
        return f"{outcome.get('status')}: {len(written)} written, total cost {usd(outcome.get('total_cost'))}"
    return ""


class PlanView:
    """One plan's page content: loaded from the API, drawn, and drawn again after a decision."""

    def __init__(self, signed_in: Session, plan_id: str) -> None:
        self.session, self.plan_id = signed_in, plan_id
        self.area = ui.column().classes("w-full gap-4")
        self.lines: list[LineEdit] = []

    async def load(self) -> None:
        base = f"/plans/{self.plan_id}"
        try:
            plan, events, series = await asyncio.gather(
                call(self.session, "GET", base), call(self.session, "GET", f"{base}/events"),
                call(self.session, "GET", f"{base}/series", params={"history_days": HISTORY_DAYS}))  # fmt: skip
        except Refused as exc:
            self.area.clear()
            with self.area:
                ui.link("← Plans", "/plans")
                ui.label(f"The server refused: {exc.message}").classes("text-negative")
            return
        self.area.clear()
        with self.area:
            self.draw(plan, series, events["events"])

    def draw(self, plan: dict[str, Any], series: dict[str, Any], events: list[dict[str, Any]]) -> None:
        created = next((e for e in events if e["event_type"] == "created"), None)
        store = ((created or {}).get("payload") or {}).get("store") or {}
        with ui.row().classes("items-center gap-3"):
            ui.link("← Plans", "/plans")
            ui.label(f"Plan for store {plan['store_id']}" + (f" · {store['name']}" if store.get("name") else "")
                     ).classes("text-h5")  # fmt: skip
            status_badge(plan["status"])
        ui.label(f"plan {plan['plan_id']} · made {when(plan['metadata']['generated_at'])} · model "
                 f"{plan['metadata']['model_version'] or 'none (fallback forecasts)'}").classes("text-caption")
        self.summary(plan, events)
        lines = plan["recommendations"]
        if lines:
            self.table(lines)
            pending = plan["status"] == "pending_approval"
            editable = pending and self.session.can("approver")
            ui.label("Lines: sales, forecast and stock").classes("text-h6")
            if len(lines) > OPENED:
                ui.label(f"The first {OPENED} lines are open; open any other to see its chart"
                         + (" and edit it." if editable else ".")).classes("text-caption")  # fmt: skip
            by_item = {s["item_id"]: s for s in series["lines"]}
            with ui.grid(columns=2).classes("w-full gap-3 items-start"):
                self.lines = [LineEdit(line, by_item[line["item_id"]], editable, index < OPENED)
                              for index, line in enumerate(lines) if line["item_id"] in by_item]  # fmt: skip
            if pending:
                self.decision()
        self.outcome(plan)
        ui.label("Timeline").classes("text-h6")
        with ui.timeline(side="right").classes("w-full plan-events"):
            for event in events:
                kind = str(event["event_type"])
                ui.timeline_entry(event_text(event), title=kind.replace("_", " "), icon=EVENT_ICONS.get(kind),
                                  subtitle=f"{when(event['created_at'])} · {event['actor']}",
                                  color="positive" if kind == "approved" else "negative" if kind == "rejected"
                                  else None)  # fmt: skip

    def summary(self, plan: dict[str, Any], events: list[dict[str, Any]]) -> None:
        summary, reflection = plan.get("summary") or {}, plan.get("reflection") or {}
        lead = next((int(e["payload"]["constraints"]["lead_time_days"]) for e in events
                     if e["event_type"] == "created" and e.get("payload")), 0)  # fmt: skip
        with ui.row().classes("gap-3"):
            if plan.get("starts_on"):
                starts = date.fromisoformat(plan["starts_on"])
                ends = starts + timedelta(days=lead + int(plan["horizon_days"]) - 1)
                tile("period", f"{starts:%b %d} → {ends:%b %d}",
                      f"lead time {lead} d + horizon {plan['horizon_days']} d")
            if summary:
                outcome = plan.get("outcome") or {}
                budget = f"of a {usd(summary.get('budget'))} budget" + (" (binding)" if summary.get("budget_binding")
                                                                             else "")  # fmt: skip
                if outcome.get("status") == "approved":
                    tile("written", usd(outcome.get("total_cost")), f"proposed {usd(summary.get('total_cost'))}")
                else:
                    tile("total cost", usd(summary.get("total_cost")), budget)
                tile("orders · promotions", f"{summary.get('orders', 0)} · {summary.get('promotions', 0)}",
                      f"expected profit {usd(summary.get('expected_profit'))}")  # fmt: skip
            if reflection:
                tile("confidence", f"{reflection['confidence']:.2f}",
                      f"policy threshold {reflection['threshold']:.2f}", alert=bool(reflection.get("needs_review")))
        if plan.get("decided_by"):
            said = f": “{plan['comment']}”" if plan.get("comment") else ""
            ui.label(f"{STATUSES.get(plan['status'], plan['status']).capitalize()} by {plan['decided_by']}{said}"
                     ).classes("text-subtitle1 text-weight-medium")  # fmt: skip
        brief = reflection.get("brief") or {}
        if brief.get("summary"):
            ui.label(str(brief["summary"])).classes("text-body1")
        for risk in reflection.get("risks") or []:
            with ui.row().classes("items-center gap-2 no-wrap"):
                ui.badge(str(risk["severity"]), color=SEVERITY_COLORS.get(str(risk["severity"]), "grey"))
                ui.label(f"{risk['risk']}: {risk['mitigation']}").classes("text-body2")
        for note in plan.get("notes") or []:
            ui.label(str(note)).classes("text-caption")

    def table(self, lines: list[dict[str, Any]]) -> None:
        columns = [{"name": f, "label": label, "field": f, "align": "left"} for f, label in (
            ("item", "item"), ("name", "name"), ("qty", "proposed qty"), ("discount", "discount"), ("unit", "unit"),
            ("cost", "cost"), ("risk", "stock-out risk"), ("confidence", "confidence"), ("rationale", "reason"))]
        rows = [{"item": r["item_id"], "name": r["name"], "qty": f"{r['recommended_order_qty']:,}",
                 "discount": f"{100 * r['recommended_discount']:g} %" if r["recommended_discount"] else "",
                 "unit": usd(r["unit_cost"]), "cost": usd(r["cost"]), "risk": f"{r['stockout_risk']:.0%}",
                 "confidence": f"{r['confidence']:.2f}", "rationale": r["rationale"]} for r in lines]  # fmt: skip
        table = ui.table(columns=columns, rows=rows, row_key="item").classes("w-full").props("dense flat bordered")
        table.add_slot("body-cell-rationale", """<q-td :props="props" style="white-space: normal; min-width: 240px">
            <div class="ellipsis-2-lines" :title="props.value">{{ props.value }}</div></q-td>""")

    def decision(self) -> None:
        with ui.card().classes("w-full gap-2").props("flat bordered"):
            ui.label("Decision").classes("text-h6")
            if not self.session.can("approver"):
                ui.label(f"Signed in as {self.session.role}: approving or rejecting a plan needs the approver role "
                         "(and the policy's authority for its amounts).").classes("text-body2")  # fmt: skip
                return
            ui.label("Edits above are sent with the approval; the server checks each against the plan's budget, "
                     "limits and your authority.").classes("text-caption")  # fmt: skip
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                comment = ui.input("Comment (for the audit trail)").props("outlined dense").classes("grow")
                approve = ui.button("Approve", icon="check").props("color=positive")
            with ui.row().classes("w-full items-start gap-2 no-wrap"):
                reason = ui.input("Reason (required to reject)").props("outlined dense").classes("grow")
                reject = ui.button("Reject", icon="close").props("color=negative outline").classes("mt-1")
            refused = ui.label().classes("text-negative text-body1")

        async def send(verb: str, body: dict[str, Any], button: ui.button) -> None:
            refused.set_text("")
            button.props("loading")
            try:
                done = await call(self.session, "POST", f"/plans/{self.plan_id}/{verb}", json=body)
            except Refused as exc:
                refused.set_text(f"The server refused: {exc.message}")
                return
            finally:
                button.props(remove="loading")
            ui.notify(f"Plan {STATUSES.get(done['status'], done['status'])}.", type="positive")
            await self.load()

        async def approve_plan() -> None:
            try:
                edits = [edit for line in self.lines if (edit := line.edit()) is not None]
            except ValueError as exc:
                refused.set_text(str(exc))
                return
            text = (comment.value or "").strip()
            await send("approve", {"edits": edits} | ({"comment": text} if text else {}), approve)

        async def reject_plan() -> None:
            text = (reason.value or "").strip()
            if not text:
                refused.set_text("A rejection needs a reason.")
                return
            await send("reject", {"reason": text}, reject)

        approve.on_click(approve_plan)
        reject.on_click(reject_plan)

    def outcome(self, plan: dict[str, Any]) -> None:
        outcome = plan.get("outcome") or {}
        actions = outcome.get("actions") or []
        if outcome.get("status") != "approved" or not actions:  # a rejected plan wrote nothing: its reason is above
            return
        ui.label("What was written").classes("text-h6")
        rows = [{"item": a.get("item_id"), "what": "purchase order" if a.get("name") == "place_purchase_order" else
                 "promotion" if a.get("name") else "", "value": f"{a['quantity']:,} units" if "quantity" in a else
                 f"{100 * a['discount']:g} %" if "discount" in a else "", "cost": usd(a.get("cost")),
                 "id": a.get("po_id") or a.get("promotion_id") or "", "edited": "edited" if a.get("edited") else "",
                 "result": a.get("outcome") if a.get("outcome") == "written" else a.get("why"),
                 "by": a.get("by") or ""} for a in actions]  # fmt: skip
        columns = [{"name": f, "label": f, "field": f, "align": "left"} for f in rows[0]]
        ui.table(columns=columns, rows=rows, row_key="item").classes("w-full").props("dense flat bordered")


@ui.page("/plans/{plan_id}")
async def plan_page(plan_id: str) -> None:
    signed_in = await require_session()
    if signed_in is None:
        return
    ui.add_css(".plan-events .q-timeline__title {font-size: 1rem; line-height: 1.4; margin-bottom: 2px} "
               ".plan-events .q-timeline__subtitle {margin-bottom: 2px} "
               ".plan-events .q-timeline__content {padding-bottom: 12px; gap: 2px}")
    with frame("Plan", signed_in):
        view = PlanView(signed_in, plan_id)
        await view.load()
