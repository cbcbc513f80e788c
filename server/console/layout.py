"""What every console page shares: the signed-in session (tab storage), the header with the navigation, and the
guard that sends a tab without a session to the sign-in page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

from nicegui import app, ui

from server.console.api import CONFIG, Session

PAGES: tuple[tuple[str, str], ...] = (("Chat", "/chat"),)
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
