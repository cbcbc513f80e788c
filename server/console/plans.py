"""``/ui/plans``: the store plans, and the form that makes one.

``/plans`` lists the plans (``GET /plans``: newest first, status and store filters, paged) and, for operators, the
"New plan" form: a store, items chosen from those it stocks (``GET /plans/stores``), each item's current stock, the
lead time, horizon, budget and deepest discount, checked in the page against the request's bounds and sent to
``POST /plans``; the server's refusal is shown next to the form as it said it, and a plan made opens its page.

One plan's page is :mod:`server.console.plan_view`.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from server.console.api import Refused, Session, call
from server.console.layout import Paged, frame, require_session, when

STATUSES = {"pending_approval": "pending approval", "approved": "approved", "rejected": "rejected",
            "no_action": "no action", "created": "being prepared"}  # fmt: skip
STATUS_COLORS = {"pending_approval": "orange", "approved": "positive", "rejected": "negative", "no_action": "blue-grey",
                 "created": "grey"}  # fmt: skip
MAX_LEAD_DAYS, MAX_BUDGET = 30, 1e9
"""The request's bounds the page checks before sending (``graphs.planning.request``); the server checks them all."""


def status_badge(status: str) -> None:
    ui.badge(STATUSES.get(status, status), color=STATUS_COLORS.get(status, "grey")).classes("text-body2")


def usd(amount: Any) -> str:
    return "" if amount is None else f"{float(amount):,.2f}"


def is_whole(value: Any, low: float, high: float) -> bool:
    return value is not None and float(value).is_integer() and low <= value <= high


# -- /plans: the form and the list ------------------------------------------------------------------------------


class PlanForm:
    """The "New plan" form: a ``CreatePlanRequest`` built from the chosen store's items, checked here, judged by the
    server (``POST /plans``)."""

    def __init__(self, signed_in: Session, catalog: dict[str, Any]) -> None:
        self.session = signed_in
        self.stores = {int(s["store_id"]): s for s in catalog["stores"]}
        self.max_cover, defaults = int(catalog["max_cover_days"]), catalog["defaults"]
        self.stocks: dict[int, ui.number] = {}
        with ui.card().classes("w-full gap-3").props("flat bordered"):
            ui.label("New plan").classes("text-h6")
            with ui.row().classes("w-full items-start gap-2 no-wrap"):
                self.store = ui.select({k: f"{k} · {s['name']} ({s['city']})" for k, s in self.stores.items()},
                                       label="Store", on_change=self.choose_store,
                                       validation={"choose a store": lambda v: v is not None})  # fmt: skip
                self.store.props("outlined dense").classes("w-80 shrink-0")
                self.items = ui.select({}, label="Items", multiple=True, on_change=self.show_stocks,
                                       validation={"choose at least one item": lambda v: bool(v)})  # fmt: skip
                self.items.props("outlined dense use-chips").classes("grow")
                ui.button("All items", on_click=self.all_items).props("flat dense").classes("mt-1")
            self.stock_area = ui.row().classes("w-full gap-2")
            self.stock_area.set_visibility(False)
            with ui.row().classes("items-start gap-2"):
                self.lead = ui.number("Lead time (days)", value=defaults["lead_time_days"], min=0, max=MAX_LEAD_DAYS,
                                      step=1, validation={f"0 to {MAX_LEAD_DAYS} whole days":
                                                          lambda v: is_whole(v, 0, MAX_LEAD_DAYS)})  # fmt: skip
                self.horizon = ui.number("Horizon (days)", value=14, min=1, max=self.max_cover, step=1, validation={
                    f"1 to {self.max_cover} whole days": lambda v: is_whole(v, 1, self.max_cover),
                    f"lead time + horizon: at most {self.max_cover} days":
                        lambda v: v is None or (self.lead.value or 0) + v <= self.max_cover})  # fmt: skip
                self.budget = ui.number("Budget (USD)", value=defaults["budget_limit"], min=0, step=1000,
                                        validation={"above 0": lambda v: v is not None and 0 < v <= MAX_BUDGET})
                self.discount = ui.number("Deepest discount (%)", value=round(100 * defaults["max_discount"]), min=0,
                                          max=99, step=1, validation={"0 to under 100 %":
                                                                      lambda v: v is not None and 0 <= v < 100})
                for field in (self.lead, self.horizon, self.budget, self.discount):
                    field.props("outlined dense").classes("w-44")
            with ui.row().classes("items-center gap-3 no-wrap"):
                self.submit = ui.button("Create plan", icon="add", on_click=self.create).props("color=primary")
                self.message = ui.label().classes("text-negative")
            ui.label("The plan runs the forecast, the order and promotion planners and the review (a few seconds); "
                     "it then waits for an approver.").classes("text-caption")  # fmt: skip

    def choose_store(self) -> None:
        store = self.stores.get(self.store.value) if self.store.value is not None else None
        options = {int(i["item_id"]): f"{i['item_id']} · {i['name']}" for i in (store or {}).get("items", [])}
        self.items.set_options(options, value=[])

    def all_items(self) -> None:
        if self.store.value is None:
            self.store.validate()
            return
        self.items.set_value(list(self.items.options))

    def show_stocks(self) -> None:
        """One current-stock field per chosen item (what was typed is kept), the stock on record to start from."""
        store = self.stores.get(self.store.value) if self.store.value is not None else None
        known = {int(i["item_id"]): i for i in (store or {}).get("items", [])}
        typed = {sku: field.value for sku, field in self.stocks.items()}
        self.stock_area.clear()
        self.stocks = {}
        self.stock_area.set_visibility(bool(self.items.value))
        with self.stock_area:
            ui.label("Stock now (from the inventory; type the count):").classes("text-caption w-full")
            for sku in self.items.value or []:
                item = known[int(sku)]
                self.stocks[int(sku)] = ui.number(
                    f"{sku} · stock now", value=typed.get(int(sku), item["on_hand"]), min=0, step=1,
                    validation={"a whole number, 0 or more": lambda v: is_whole(v, 0, 10**7)},
                ).props("outlined dense").classes("plan-stock w-44").tooltip(
                    f"{item['name']}: {item['on_hand']} on hand, {item['on_order']} on order, lead time "
                    f"{item['lead_time_days']} d")  # fmt: skip

    def request(self) -> dict[str, Any] | None:
        """The request, or None (with the fields' messages shown) when a field is out of bounds."""
        fields = [self.store, self.items, self.lead, self.horizon, self.budget, self.discount, *self.stocks.values()]
        if not all([field.validate() for field in fields]):  # every field shows its message
            return None
        return {"store_id": int(self.store.value), "horizon_days": int(self.horizon.value or 0),
                "constraints": {"lead_time_days": int(self.lead.value or 0),
                                "budget_limit": float(self.budget.value or 0),
                                "max_discount": round(float(self.discount.value or 0) / 100, 4)},
                "items": [{"item_id": sku, "current_stock": int(field.value or 0)}
                          for sku, field in self.stocks.items()]}  # fmt: skip

    async def create(self) -> None:
        self.message.set_text("")
        body = self.request()
        if body is None:
            self.message.set_text("Some fields need a fix (see their messages).")
            return
        self.submit.props("loading")
        try:
            plan = await call(self.session, "POST", "/plans", json=body)
        except Refused as exc:
            self.message.set_text(f"The server refused: {exc.message}")
            return
        finally:
            self.submit.props(remove="loading")
        ui.notify(f"Plan made: {STATUSES.get(plan['status'], plan['status'])}.", type="positive")
        ui.navigate.to(f"/plans/{plan['plan_id']}")


class PlanList(Paged):
    """The plans, newest first: filtered by status and store, paged; a row opens its plan."""

    size = 20

    def __init__(self, signed_in: Session, stores: list[int]) -> None:
        self.session = signed_in
        with ui.row().classes("gap-2 items-center"):
            self.status = ui.select(STATUSES, label="Status", clearable=True).props("dense outlined").classes("w-48")
            self.store = ui.select(stores, label="Store", clearable=True).props("dense outlined").classes("w-32")
            for field in (self.status, self.store):
                field.on_value_change(self.first_page)
            ui.button(icon="refresh", on_click=self.load).props("flat round").tooltip("Refresh")
        self.area = ui.column().classes("w-full gap-1")

    async def load(self) -> None:
        params = {k: v for k, v in (("status", self.status.value), ("store_id", self.store.value)) if v is not None}
        params |= {"limit": self.size, "offset": self.offset}
        try:
            page = await call(self.session, "GET", "/plans", params=params)
        except Refused as exc:
            self.area.clear()
            with self.area:
                ui.label(f"The server refused: {exc.message}").classes("text-negative")
            return
        self.area.clear()
        with self.area:
            self.pager(page["total"], "plans")
            plan_table(page["items"])


def plan_table(plans: list[dict[str, Any]]) -> None:
    names = (("created", "created"), ("plan", "plan"), ("store_id", "store"), ("status", "status"),
             ("horizon", "horizon"), ("line_count", "lines"), ("cost", "total cost"), ("confidence", "confidence"),
             ("created_by", "made by"), ("decided_by", "decided by"))  # fmt: skip
    columns = [{"name": f, "label": label, "field": f, "align": "left"} for f, label in names]
    rows = [{**p, "created": when(p["created_at"]), "plan": p["plan_id"][:8], "horizon": f"{p['horizon_days']} d",
             "cost": usd(p["total_cost"]), "confidence": "" if p["confidence"] is None else f"{p['confidence']:.2f}",
             "decided_by": p["decided_by"] or ""} for p in plans]  # fmt: skip
    table = ui.table(columns=columns, rows=rows, row_key="plan_id").classes("w-full cursor-pointer")
    table.props("dense flat bordered")
    colors = ", ".join(f"{k}: '{v}'" for k, v in STATUS_COLORS.items())
    labels = ", ".join(f"{k}: '{v}'" for k, v in STATUSES.items())
    table.add_slot("body-cell-status", f"""<q-td :props="props"><q-badge :color="({{{colors}}})[props.value]"
        :label="({{{labels}}})[props.value]" /></q-td>""")  # fmt: skip
    table.on("rowClick", lambda e: ui.navigate.to(f"/plans/{e.args[1]['plan_id']}"))


@ui.page("/plans")
async def plans_page() -> None:
    signed_in = await require_session()
    if signed_in is None:
        return
    with frame("Plans", signed_in):
        ui.label("Store plans").classes("text-h5")
        try:
            catalog = await call(signed_in, "GET", "/plans/stores")
        except Refused as exc:
            ui.label(f"The server refused: {exc.message}").classes("text-negative")
            return
        if signed_in.can("operator"):
            PlanForm(signed_in, catalog)
        else:
            ui.label(f"Signed in as {signed_in.role}: making a plan needs the operator role.").classes("text-caption")
        ui.label("Plans").classes("text-h6")
        listing = PlanList(signed_in, [int(s["store_id"]) for s in catalog["stores"]])
        await listing.load()
