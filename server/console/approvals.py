"""``/ui/approvals``: the approvals inbox, every pending approval across workflows, and the decision on one.

The list comes from ``GET /approvals`` (longest waiting, newest or largest amount first; optionally only what the
signed-in role can decide); the selected approval shows what is asked, each action's amount, the role it needs,
the policy's reason and citations, and the thread's audit timeline (``GET /threads/{id}/audit``). Approvers decide
each action (approve, edit its numbers, reject with a comment) through ``POST /approvals/{thread}/decision``; the
server judges authority and limits, and its refusal is shown as it said it. Viewers and operators see no controls,
only why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from nicegui import ui

from server.console.api import Refused, Session, call
from server.console.layout import audit_timeline, citation_link, columns, frame, require_session, when

Order = Literal["urgent", "newest", "amount"]
ORDERS: dict[str, str] = {"urgent": "Longest waiting first", "newest": "Newest first", "amount": "Largest amount first"}
ROW = r"""
<q-tr :props="props" @click="$parent.$emit('pick', props.row)" class="cursor-pointer"
      :class="props.row.chosen ? 'bg-blue-1' : ''">
  <q-td key="asked" :props="props">
    <div class="text-body2">{{ props.row.asked }}</div>
    <div class="text-caption text-grey-8">{{ props.row.workflow }} · {{ props.row.amount }} · needs
      {{ props.row.role }} · waiting {{ props.row.waiting }}</div>
  </q-td>
</q-tr>"""


def waited(since: str | None, now: datetime | None = None) -> str:
    """``since`` as a waiting time: "4 min", "3 h 10 min", "2 d 5 h"."""
    if not since:
        return "unknown"
    seconds = max(0, int(((now or datetime.now(UTC)) - datetime.fromisoformat(since)).total_seconds()))
    days, hours, minutes = seconds // 86400, seconds % 86400 // 3600, seconds % 3600 // 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def ordered(items: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    """The inbox in the chosen order (the API lists it longest waiting first)."""
    if order == "newest":
        return sorted(items, key=lambda i: str(i.get("waiting_since") or ""), reverse=True)
    if order == "amount":
        return sorted(items, key=lambda i: float(i.get("total_amount") or 0), reverse=True)
    return sorted(items, key=lambda i: str(i.get("waiting_since") or ""))


def _money(amount: Any, currency: Any = "USD") -> str:
    return "" if amount is None else f"{float(amount):,.2f} {currency or ''}".strip()


class Decision:
    """The decision form of one action request: approve, edit (its numeric arguments) or reject (with a comment)."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request
        allowed = [d for d in request.get("allowed_decisions") or ["approve", "reject"] if d in ("approve", "edit",
                                                                                                 "reject")]  # fmt: skip
        self.kind = ui.toggle({d: d.capitalize() for d in allowed}, value="approve").props("dense no-caps")
        self.numbers: dict[str, ui.number] = {}
        with ui.row().classes("items-center gap-2").bind_visibility_from(self.kind, "value", value="edit"):
            for name, value in (request.get("args") or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.numbers[name] = ui.number(name.replace("_", " "), value=value, min=0,
                                                   validation={"must be 0 or more": lambda v: v is not None and v >= 0}
                                                   ).props("dense outlined").classes("w-40")  # fmt: skip
            if not self.numbers:
                ui.label("This action has no amount to edit.").classes("text-caption")
        self.comment = ui.input("Comment (required to reject)").props("dense outlined").classes("w-full")

    def value(self) -> dict[str, Any]:
        """The decision as the API takes it; ValueError naming what is missing."""
        comment = (self.comment.value or "").strip()
        if self.kind.value == "reject":
            if not comment:
                raise ValueError(f"{self.request['name']}: a rejection needs a comment")
            return {"type": "reject", "message": comment}
        if self.kind.value == "edit":
            args = dict(self.request.get("args") or {})
            for name, field in self.numbers.items():
                if field.value is None or field.value < 0:
                    raise ValueError(f"{self.request['name']}: {name} must be a number, 0 or more")
                args[name] = field.value
            return {"type": "edit", "edited_action": {"name": self.request["name"], "args": args}} | (
                {"message": comment} if comment else {}
            )
        return {"type": "approve"} | ({"message": comment} if comment else {})


class Inbox:
    """The page's state: the list, the selected approval, and deciding it."""

    def __init__(self, signed_in: Session, listing: ui.column, detail: ui.column) -> None:
        self.session, self.listing, self.detail = signed_in, listing, detail
        self.items: list[dict[str, Any]] = []
        self.total = 0
        self.order: str = "urgent"
        self.decidable = False
        self.selected: str | None = None

    async def load(self) -> None:
        params: dict[str, Any] = {"limit": 200} | ({"decidable": "true"} if self.decidable else {})
        try:
            answer = await call(self.session, "GET", "/approvals", params=params)
        except Refused as exc:
            self.listing.clear()
            with self.listing:
                ui.label(f"The server refused: {exc.message}").classes("text-negative")
            return
        self.items, self.total = answer["items"], int(answer["total"])
        if self.selected not in {i["thread_id"] for i in self.items}:
            self.selected = self.items[0]["thread_id"] if self.items else None
        self.show_list()
        await self.show_detail()

    def show_list(self) -> None:
        """The pending approvals as one table (a row per approval: what is asked, amount, role, waiting time)."""
        self.listing.clear()
        rows = [{"id": i["thread_id"], "chosen": i["thread_id"] == self.selected, "workflow": i.get("assistant_id"),
                 "asked": str(i.get("description") or i.get("kind")), "amount": _money(i.get("total_amount")),
                 "role": i.get("required_role"), "waiting": waited(i.get("waiting_since"))}
                for i in ordered(self.items, self.order)]  # fmt: skip
        with self.listing:
            shown = f" (the first {len(self.items)} listed)" if self.total > len(self.items) else ""
            ui.label(f"{self.total} pending{shown}").classes("text-subtitle2")
            table = ui.table(columns=columns("asked"), rows=rows, row_key="id", pagination=8).classes("w-full")
            table.props("dense flat bordered hide-header wrap-cells")
            table.add_slot("body", ROW)
            table.on("pick", lambda e: self.select(e.args["id"]))

    async def select(self, thread_id: str) -> None:
        self.selected = thread_id
        self.show_list()
        await self.show_detail()

    async def show_detail(self) -> None:
        self.detail.clear()
        item = next((i for i in self.items if i["thread_id"] == self.selected), None)
        with self.detail:
            if item is None:
                ui.label("Nothing waits for a decision.").classes("text-subtitle1")
                return
            ui.label(str(item.get("description") or "")).classes("text-h6")
            with ui.row().classes("gap-4 text-body2"):
                ui.label(f"workflow {item['assistant_id']}")
                ui.label(f"thread {item['thread_id']}")
                for order_id in sorted({str(r["args"]["order_id"]) for r in item.get("action_requests") or []
                                        if "order_id" in (r.get("args") or {})}):  # fmt: skip
                    ui.link(f"order {order_id}", f"/orders/{order_id}")
                ui.label(f"waiting {waited(item.get('waiting_since'))} (since {when(item.get('waiting_since'))})")
            forms = [self.action(request) for request in item.get("action_requests") or []]
            self.controls(item, forms)
            ui.separator()
            ui.label("Audit timeline").classes("text-subtitle1")
            await audit_timeline(self.session, item["thread_id"])

    def action(self, request: dict[str, Any]) -> Decision | None:
        with ui.card().classes("w-full gap-1").props("flat bordered"):
            with ui.row().classes("items-center gap-3"):
                ui.label(str(request["name"]).replace("_", " ")).classes("text-subtitle1")
                if request.get("amount") is not None:
                    ui.label(_money(request["amount"], request.get("currency"))).classes("text-h6")
                ui.badge(f"needs {request.get('required_role')}", color="orange")
            ui.label(str(request.get("description") or "")).classes("text-body2")
            args = ", ".join(f"{k} {v}" for k, v in (request.get("args") or {}).items())
            ui.label(f"arguments: {args}").classes("text-caption")
            if request.get("policy_reason"):
                ui.label(f"policy: {request['policy_reason']}").classes("text-caption")
            with ui.row().classes("gap-1"):
                for cited in request.get("citations") or []:
                    citation_link(str(cited))
            if self.session.can("approver"):
                return Decision(request)
        return None

    def controls(self, item: dict[str, Any], forms: list[Decision | None]) -> None:
        if not self.session.can("approver"):
            ui.label(f"Signed in as {self.session.role}: deciding needs the approver role "
                     f"(this one: {item.get('required_role')}).").classes("text-caption")  # fmt: skip
            return
        outcome = ui.label().classes("text-body1")

        async def submit() -> None:
            try:
                decisions = [form.value() for form in forms if form is not None]
            except ValueError as exc:
                outcome.set_text(str(exc))
                outcome.classes(replace="text-negative")
                return
            body = {"decisions": decisions, "interrupt_id": item["interrupt_id"], "wait": True}
            try:
                done = await call(self.session, "POST", f"/approvals/{item['thread_id']}/decision", json=body)
            except Refused as exc:
                outcome.set_text(f"The server refused: {exc.message}")
                outcome.classes(replace="text-negative")
                return
            ui.notify(f"Decided: the run {done['run_status']}, the thread is {done['thread_status']}.",
                      type="positive")  # fmt: skip
            await self.load()

        if not item.get("can_decide"):
            ui.label(f"Your role may not be enough for this (it needs {item.get('required_role')}); "
                     "the server will say why if it refuses.").classes("text-caption")  # fmt: skip
        ui.button("Submit decision", on_click=submit).props("color=primary")


@ui.page("/approvals")
async def approvals_page() -> None:
    signed_in = await require_session()
    if signed_in is None:
        return
    with frame("Approvals", signed_in):
        with ui.row().classes("items-center gap-4"):
            order = ui.select(ORDERS, value="urgent", label="Order").props("dense outlined").classes("w-56")
            mine = ui.switch("Only what I can decide")
            refresh = ui.button(icon="refresh").props("flat round").tooltip("Refresh")
        with ui.row().classes("w-full items-start gap-4 no-wrap"):
            listing = ui.column().classes("w-96 shrink-0 gap-2")
            detail = ui.column().classes("grow gap-2")
    inbox = Inbox(signed_in, listing, detail)

    def reorder() -> None:
        inbox.order = str(order.value)
        inbox.show_list()

    async def only_mine() -> None:
        inbox.decidable = bool(mine.value)
        await inbox.load()

    order.on_value_change(reorder)
    mine.on_value_change(only_mine)
    refresh.on_click(inbox.load)
    await inbox.load()
