"""What every console page shares: the signed-in session (tab storage), the header with the navigation, and the
guard that sends a tab without a session to the sign-in page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any
from urllib.parse import quote

from nicegui import app, ui

from server.console.api import CONFIG, Refused, Session, call

PAGES: tuple[tuple[str, str], ...] = (
    ("Chat", "/chat"),
    ("Approvals", "/approvals"),
    ("Deviations", "/deviations"),
    ("Upload", "/upload"),
    ("Plans", "/plans"),
    ("Knowledge", "/knowledge"),
    ("Models", "/models"),
)
"""The navigation: label and path (under the mount) of each page."""


def session() -> Session | None:
    """This tab's signed-in session (the page must have awaited ``ui.context.client.connected()``)."""
    saved = app.storage.tab.get("session")
    return Session(saved["key"], saved["name"], saved["role"], tuple(saved["includes"])) if saved else None


def remember(signed_in: Session) -> None:
    app.storage.tab["session"] = asdict(signed_in)


def sign_out() -> None:
    app.storage.tab.pop("session", None)
    ui.navigate.to("/")


async def require_session() -> Session | None:
    """The tab's session, or None after sending the tab to the sign-in page."""
    await ui.context.client.connected()
    signed_in = session()
    if signed_in is None:
        ui.navigate.to("/")
    return signed_in


@contextmanager
def frame(title: str, signed_in: Session) -> Iterator[None]:
    """The page's header (title, navigation, who is signed in) around its content."""
    ui.page_title(f"{title} · RIMAS console")
    with ui.header().classes("items-center gap-4 bg-primary"):
        ui.label("RIMAS").classes("text-h6")
        for label, path in PAGES:
            ui.link(label, path).classes("text-white text-subtitle1")
        ui.space()
        ui.label(f"{signed_in.name} · {signed_in.role}").classes("text-white")
        if CONFIG.auth:
            ui.button("Sign out", on_click=sign_out).props("flat color=white")
    with ui.column().classes("w-full max-w-5xl mx-auto p-4 gap-4"):
        yield


def when(stamp: Any) -> str:
    """An API timestamp (RFC 3339) as "2026-12-05 11:27 UTC"; empty for none."""
    if not stamp:
        return ""
    moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def citation_link(citation_id: str) -> None:
    """A policy citation as a link to the knowledge page searching for it."""
    ui.link(citation_id, f"/knowledge?q={quote(citation_id)}").classes("text-caption")


SEVERITY_COLORS = {"critical": "red", "warning": "orange", "info": "blue", "none": "grey"}


def severity_badge(severity: str, text: str | None = None) -> None:
    """A badge in the severity's colour (critical red, warning orange, info blue)."""
    ui.badge(text or severity, color=SEVERITY_COLORS.get(severity, "grey"))


def columns(*names: str | tuple[str, str]) -> list[dict[str, Any]]:
    """``ui.table`` columns, sortable and left-aligned: a field name (its label with spaces), or (field, label)."""
    pairs = [(n, n.replace("_", " ")) if isinstance(n, str) else n for n in names]
    return [{"name": f, "label": label, "field": f, "align": "left", "sortable": True} for f, label in pairs]


async def audit_timeline(signed_in: Session, thread_id: str) -> None:
    """The thread's who / what / when list (``GET /threads/{id}/audit``), newest last."""
    try:
        audit = await call(signed_in, "GET", f"/threads/{thread_id}/audit")
    except Refused as exc:
        ui.label(f"The server refused: {exc.message}").classes("text-negative")
        return
    with ui.timeline(side="right", layout="dense").classes("w-full"):
        for event in audit.get("events") or []:
            decided = event.get("kind") not in ("step", "run_started")
            ui.timeline_entry(f"{event.get('who')}: {event.get('what')}", subtitle=when(event.get("when")),
                              color="orange" if decided else None).classes("text-body2")  # fmt: skip


def tile(label: str, value: str, note: str = "", alert: bool = False) -> None:
    """A figure in a small card: its label, the value (red when ``alert``) and a note under it."""
    with ui.card().classes("gap-0 p-3 min-w-36").props("flat bordered"):
        ui.label(label).classes("text-caption")
        ui.label(value).classes("text-h6" + (" text-negative" if alert else ""))
        if note:
            ui.label(note).classes("text-caption")


class Paged:
    """A list read a page at a time: its offset, back to the first page, turning pages, and the "1-50 of 1,441" row
    with its arrows. A subclass sets ``size`` and reads its page in :meth:`load`."""

    size = 50
    offset = 0

    async def load(self) -> None:
        raise NotImplementedError

    async def first_page(self) -> None:
        self.offset = 0
        await self.load()

    async def turn(self, step: int) -> None:
        self.offset = max(0, self.offset + step * self.size)
        await self.load()

    def pager(self, total: int, noun: str = "") -> None:
        last = min(self.offset + self.size, total)
        with ui.row().classes("items-center gap-2"):
            ui.label(f"{self.offset + 1 if total else 0}-{last} of {total:,}{' ' + noun if noun else ''}")
            back = ui.button(icon="chevron_left", on_click=lambda: self.turn(-1)).props("flat round dense")
            back.set_enabled(self.offset > 0)
            forward = ui.button(icon="chevron_right", on_click=lambda: self.turn(1)).props("flat round dense")
            forward.set_enabled(last < total)
