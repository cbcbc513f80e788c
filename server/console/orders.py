"""``/ui/orders/{order_id}``: one order, its delay risk and the factors behind it, its deviation, every ledger
action taken for it, and its workflow thread's audit timeline.

Read from ``GET /orders/{id}`` and ``GET /threads/{id}/audit``. An operator can start the deviation's workflow
(``POST /trigger-agent``) when it has none yet; the approval itself is decided on the approvals page.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from server.console.api import Refused, Session, call
from server.console.layout import audit_timeline, columns, frame, require_session, severity_badge, when

ORDER_FIELDS = ("customer_id", "order_date", "promised_delivery_date", "ship_date", "delivery_date", "order_status",
                "payment_status", "warehouse_block", "mode_of_shipment", "carrier_name", "product_importance",
                "cost_of_product", "discount_offered", "weight_in_gms", "customer_care_calls")  # fmt: skip


def summary(details: dict[str, Any]) -> str:
    """What a ledger row did, in a line: its amount, the change, the message's subject, the reason, its status."""
    inner: dict[str, Any] = details["details"] if isinstance(details.get("details"), dict) else {}
    money = details.get("amount", details.get("cost"))
    parts = [f"{float(money):,.2f} USD" if isinstance(money, int | float) else "",
             f"to {details['to_value']}" if details.get("to_value") else "",
             f"“{details['subject']}” by {details.get('channel')}" if details.get("subject") else "",
             str(details.get("reason") or inner.get("reason") or ""),
             str(details.get("status") or "")]  # fmt: skip
    return " · ".join(p for p in parts if p)


def prediction_card(prediction: dict[str, Any]) -> None:
    with ui.card().classes("gap-1 w-96").props("flat bordered"):
        ui.label("Delay risk").classes("text-subtitle1")
        with ui.row().classes("items-center gap-2"):
            ui.label(f"P(late) {prediction['delay_probability']:.2f}").classes("text-h6")
            severity_badge(prediction["severity"])
            if prediction.get("is_anomaly"):
                ui.badge("anomalous", color="purple")
        value = prediction.get("order_value")
        ui.label(f"order value {value:,.2f} USD" if value is not None else "order value unknown").classes("text-body2")
        ui.label("Risk factors").classes("text-subtitle2")
        for factor in prediction.get("top_features") or []:
            icon = "arrow_upward" if factor["effect"] == "raises" else "arrow_downward"
            with ui.row().classes("items-center gap-1 no-wrap"):
                ui.icon(icon, color="negative" if factor["effect"] == "raises" else "positive")
                ui.label(str(factor["text"])).classes("text-body2")
        ui.label(f"model {prediction['model_version']}, scored {when(prediction.get('updated_at'))}").classes(
            "text-caption")  # fmt: skip


def deviation_card(signed_in: Session, deviation: dict[str, Any]) -> None:
    with ui.card().classes("gap-1 grow").props("flat bordered"):
        with ui.row().classes("items-center gap-2"):
            ui.label("Deviation").classes("text-subtitle1")
            severity_badge(deviation["severity"])
            ui.badge(deviation["status"].replace("_", " "), color="green" if deviation["status"] == "resolved"
                     else "grey-7")  # fmt: skip
        for reason in deviation.get("reasons") or []:
            ui.label(f"• {reason}").classes("text-body2")
        resolution = deviation.get("resolution") or {}
        if resolution.get("summary"):
            ui.label(f"Resolution: {resolution['summary']}").classes("text-body2")
        if deviation.get("resolved_by"):
            ui.label(f"resolved by {deviation['resolved_by']} at {when(deviation.get('resolved_at'))}").classes(
                "text-caption")  # fmt: skip
        if deviation.get("thread_id") is None and signed_in.can("operator"):
            starting = ui.label().classes("text-body2")

            async def start() -> None:
                try:
                    started = await call(signed_in, "POST", "/trigger-agent",
                                         json={"deviation_id": deviation["deviation_id"]})  # fmt: skip
                except Refused as exc:
                    starting.set_text(f"The server refused: {exc.message}")
                    return
                ui.notify(f"Started: thread {started['thread_id']}.", type="positive")
                ui.navigate.reload()

            ui.button("Start the workflow", on_click=start).props("outline")


def actions_table(actions: list[dict[str, Any]]) -> None:
    ui.label(f"Ledger ({len(actions)} action{'s' if len(actions) != 1 else ''})").classes("text-subtitle1")
    if not actions:
        ui.label("No action has been taken for this order.").classes("text-body2")
        return
    rows = [{"kind": a["kind"].replace("_", " "), "when": when(a["created_at"]), "actor": a["actor"],
             "policy_rule": a["policy_rule"], "what": summary(a.get("details") or {}), "id": a["action_id"]}
            for a in actions]  # fmt: skip
    ui.table(columns=columns("kind", "when", "actor", "what", ("policy_rule", "policy rule")), rows=rows,
             row_key="id").classes("w-full").props("dense flat bordered wrap-cells")  # fmt: skip


@ui.page("/orders/{order_id}")
async def order_page(order_id: str) -> None:
    signed_in = await require_session()
    if signed_in is None:
        return
    with frame(f"Order {order_id}", signed_in):
        try:
            found = await call(signed_in, "GET", f"/orders/{order_id}")
        except Refused as exc:
            ui.label(f"The server refused: {exc.message}").classes("text-negative")
            return
        ui.label(f"Order {order_id}").classes("text-h6")
        order = found.get("order") or {}
        ui.label(" · ".join(f"{k.replace('_', ' ')} {order[k]}" for k in ORDER_FIELDS if order.get(k) is not None)
                 ).classes("text-body2")  # fmt: skip
        with ui.row().classes("w-full gap-4 items-start no-wrap"):
            if found.get("prediction"):
                prediction_card(found["prediction"])
            if found.get("deviation"):
                deviation_card(signed_in, found["deviation"])
        actions_table(found.get("actions") or [])
        if found.get("thread_id"):
            ui.label(f"Workflow thread {found['thread_id']}").classes("text-subtitle1")
            await audit_timeline(signed_in, found["thread_id"])
