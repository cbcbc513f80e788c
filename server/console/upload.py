"""``/ui/upload``: a CSV of orders uploaded for scoring, its progress, its bad rows by line, and its deviations.

The file goes to ``POST /predict/batch`` as the operator who uploads it; the page then follows
``GET /batch/{id}/status`` (rows done of rows total, a progress bar) until the job completes or fails, and shows
the bad-row report (line, field, allowed values) and the job's deviations (``GET /batch/{id}/deviations``), each a
link to its order. ``/ui/upload?job=<id>`` shows an earlier job again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui import events, ui

from server.console.api import Refused, Session, call
from server.console.layout import columns, frame, require_session, severity_badge

POLL_SECONDS = 0.5
ERROR_COLUMNS = columns(("row", "line"), "field", ("message", "problem"))


class Job:
    """One batch job on the page: its progress, its bad rows and its deviations."""

    def __init__(self, signed_in: Session, area: ui.column) -> None:
        self.session, self.area = signed_in, area

    async def upload(self, event: events.UploadEventArguments) -> None:
        data = await event.file.read()
        files = {"file": (event.file.name or "orders.csv", data, "text/csv")}
        try:
            started = await call(self.session, "POST", "/predict/batch", files=files)
        except Refused as exc:
            self.area.clear()
            with self.area:
                ui.label(f"The server refused the file: {exc.message}").classes("text-negative")
            return
        ui.navigate.history.replace(f"?job={started['batch_job_id']}")
        await self.follow(started["batch_job_id"])

    async def follow(self, job_id: str) -> None:
        """Show the job's progress until it ends, then its report."""
        self.area.clear()
        with self.area:
            title = ui.label(f"Job {job_id}").classes("text-subtitle1")
            bar = ui.linear_progress(value=0, show_value=False).props("size=12px rounded")
            counts = ui.label().classes("text-body2")
        while True:
            try:
                job = await call(self.session, "GET", f"/batch/{job_id}/status")
            except Refused as exc:
                counts.set_text(f"The server refused: {exc.message}")
                return
            done = int((job.get("summary") or {}).get("rows_done") or 0)
            total = int(job.get("rows_total") or 0)
            bar.set_value(done / total if total else 0)
            title.set_text(f"{job.get('filename') or 'upload'} · job {job_id} · {job['status']}")
            counts.set_text(f"{done:,} of {total:,} rows scored · {job.get('rows_ok') or 0:,} good · "
                            f"{job.get('rows_failed') or 0:,} refused")  # fmt: skip
            if job["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(POLL_SECONDS)
        bar.set_value(1.0 if job["status"] == "completed" else bar.value)
        with self.area:
            await self.report(job_id, job)

    async def report(self, job_id: str, job: dict[str, Any]) -> None:
        summary = job.get("summary") or {}
        if job["status"] == "failed":
            ui.label(f"The file could not be used: {summary.get('error') or job.get('error') or 'see its errors'}"
                     ).classes("text-negative")  # fmt: skip
        by_severity = summary.get("deviations") or {}
        with ui.row().classes("gap-2 items-center"):
            ui.label("Deviations:").classes("text-subtitle2")
            for level in ("critical", "warning", "info"):
                severity_badge(level, f"{by_severity.get(level, 0)} {level}")
            if summary.get("auto_started"):
                ui.label(f"{summary['auto_started']} workflow(s) started").classes("text-caption")
        if job.get("errors"):
            ui.label(f"Refused rows ({job.get('rows_failed')}), by line").classes("text-subtitle2")
            ui.table(columns=ERROR_COLUMNS, rows=job["errors"], pagination=10, row_key="row"
                     ).classes("w-full").props("dense flat bordered")  # fmt: skip
        try:
            found = await call(self.session, "GET", f"/batch/{job_id}/deviations", params={"limit": 200})
        except Refused as exc:
            ui.label(f"The server refused: {exc.message}").classes("text-negative")
            return
        if found["items"]:
            ui.label(f"The job's deviations ({found['total']})").classes("text-subtitle2")
            deviation_table(found["items"])


def deviation_table(items: list[dict[str, Any]]) -> None:
    """Deviations as a table whose order ids link to the order page."""
    shown = columns("order_id", "severity", "status", "delay_probability", "warehouse_block", "mode_of_shipment",
                    "created_at")
    rows = [{**{c["name"]: d.get(c["name"]) for c in shown}, "id": d["deviation_id"],
             "delay_probability": f"{float(d['delay_probability'] or 0):.2f}",
             "created_at": str(d.get("created_at") or "")[:16].replace("T", " ")} for d in items]  # fmt: skip
    table = ui.table(columns=shown, rows=rows, row_key="id", pagination=15).classes("w-full")
    table.props("dense flat bordered")
    table.add_slot("body-cell-order_id", r'''
        <q-td :props="props"><a :href="'orders/' + encodeURIComponent(props.value)" class="text-primary">
        {{ props.value }}</a></q-td>''')  # fmt: skip
    table.add_slot("body-cell-severity", r'''
        <q-td :props="props"><q-badge :color="{critical: 'red', warning: 'orange', info: 'blue'}[props.value]
        || 'grey'">{{ props.value }}</q-badge></q-td>''')  # fmt: skip


@ui.page("/upload")
async def upload_page(job: str | None = None) -> None:
    signed_in = await require_session()
    if signed_in is None:
        return
    with frame("Upload", signed_in):
        ui.label("Score a CSV of orders").classes("text-h6")
        ui.label("Columns as the orders feed sends them (order_id, customer_id, dates, warehouse_block, "
                 "mode_of_shipment, ...). Every row is checked; bad rows are listed by line and the rest are scored."
                 ).classes("text-body2")  # fmt: skip
        picker = ui.column()
        tracker = Job(signed_in, ui.column().classes("w-full gap-2"))
        with picker:
            if signed_in.can("operator"):
                ui.upload(label="CSV file", auto_upload=True, on_upload=tracker.upload).props(
                    'accept=".csv,text/csv"').classes("w-96")  # fmt: skip
            else:
                ui.label(f"Signed in as {signed_in.role}: uploading needs the operator role.").classes("text-caption")
    if job:
        await tracker.follow(job)
