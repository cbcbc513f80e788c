"""``/ui/``: sign in with an API key (with auth off, the local admin is signed in at once), then the chat."""

from __future__ import annotations

from nicegui import ui

from server.console.api import CONFIG, Refused, sign_in
from server.console.layout import remember, session


@ui.page("/")
async def signin_page() -> None:
    await ui.context.client.connected()
    ui.page_title("Sign in · RIMAS console")
    if session() is not None:
        ui.navigate.to("/chat")
        return
    if not CONFIG.auth:
        remember(await sign_in(None))
        ui.navigate.to("/chat")
        return

    async def submit() -> None:
        if not key.value:
            error.set_text("Enter your API key.")
            return
        try:
            signed_in = await sign_in(key.value)
        except Refused as exc:
            error.set_text("That key is not valid." if exc.status == 401 else f"The server refused: {exc.message}")
            return
        remember(signed_in)
        ui.navigate.to("/chat")

    with ui.card().classes("absolute-center w-96 gap-2"):
        ui.label("RIMAS console").classes("text-h6")
        ui.label("Sign in with your API key (RIMAS_API_KEYS on the server).").classes("text-caption")
        key = ui.input("API key", password=True, password_toggle_button=True).classes("w-full")
        key.props('autofocus').on("keydown.enter", submit)
        error = ui.label().classes("text-negative")
        ui.button("Sign in", on_click=submit)
