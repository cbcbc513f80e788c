"""``/ui/chat``: the chat, streamed, with the answer's table and policy citations, and feedback on each answer.

A question goes to ``POST /chat/stream`` (the thread of the conversation continues it): the answer's text is shown
as its ``messages`` events arrive, its table (and a chart of it, when it has numbers over two rows or more) and
its citations (links to the knowledge page) from the ``custom`` ``chat.answer`` event. Earlier
conversations of the chat assistant are listed from ``POST /threads/search`` and reopened from the thread's state,
tables included (each AI message carries its answer). Thumbs up / down, a 1-5 rating and a correction go to
``POST /feedback`` for the answer's run; they show for operators and up, the role the API asks for.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from server.console.api import Refused, Session, call, stream
from server.console.layout import citation_link, frame, require_session


def _table(table: dict[str, Any]) -> None:
    units = table.get("units") or {}
    names = [str(c) for c in table["columns"]]
    columns = [{"name": c, "label": f"{c} ({units[c]})" if units.get(c) not in (None, c) else c, "field": c,
                "align": "left", "sortable": True} for c in names]  # fmt: skip
    rows = [dict(zip(names, row, strict=False)) for row in table["rows"]]
    period = (table.get("period") or {}).get("label")
    title = str(table.get("title") or "") + (f" · {period}" if period else "")
    ui.table(columns=columns, rows=rows, title=title, pagination=10).classes("w-full").props("dense flat bordered")


def chart_of(table: dict[str, Any]) -> dict[str, Any] | None:
    """An ECharts option for a table worth a chart: two rows or more, its first column the axis (a line over dates,
    else bars) and its numeric columns (at most two) the series; None otherwise."""
    names, rows = [str(c) for c in table["columns"]], table["rows"]
    if len(rows) < 2 or len(names) < 2:
        return None
    numeric = [i for i in range(1, len(names)) if all(isinstance(r[i], int | float) and not isinstance(r[i], bool)
                                                       for r in rows)][:2]  # fmt: skip
    if not numeric:
        return None
    dated = all(isinstance(r[0], str) and len(r[0]) == 10 and r[0][4] == "-" for r in rows)
    units = table.get("units") or {}
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": {"left": 60, "right": 60 if len(numeric) > 1 else 20, "top": 30, "bottom": 30},
        "xAxis": {"type": "category", "data": [str(r[0]) for r in rows]},
        "yAxis": [{"type": "value", "name": str(units.get(names[i]) or names[i])} for i in numeric],
        "series": [{"type": "line" if dated else "bar", "name": names[i], "yAxisIndex": k,
                    "data": [r[i] for r in rows]} for k, i in enumerate(numeric)],
    }  # fmt: skip


def _citations(citations: list[dict[str, Any]]) -> None:
    for cited in citations:
        with ui.expansion(f"{cited.get('title')} · {cited.get('section')}", icon="menu_book").classes("w-full"):
            ui.label(str(cited.get("text") or "")).classes("text-body2")
            citation_link(str(cited.get("id")))


def _answer_extras(answer: dict[str, Any]) -> None:
    if (answer.get("table") or {}).get("rows"):
        _table(answer["table"])
        if (option := chart_of(answer["table"])) is not None:
            ui.echart(option).classes("w-full h-64")
    _citations(answer.get("citations") or [])


class Conversation:
    """One conversation on the page: its thread, the messages shown, and asking the next question."""

    def __init__(self, signed_in: Session, messages: ui.column) -> None:
        self.session, self.messages = signed_in, messages
        self.thread_id: str | None = None

    def question(self, text: str) -> None:
        with self.messages:
            ui.chat_message(text, name=self.session.name, sent=True).classes("self-end")

    def answer_card(self) -> tuple[ui.markdown, ui.column, ui.row]:
        with self.messages, ui.card().classes("w-full"):
            text = ui.markdown("…")
            extra = ui.column().classes("w-full")
            actions = ui.row().classes("items-center")
        return text, extra, actions

    def feedback(self, actions: ui.row, answer: dict[str, str]) -> None:
        """Thumbs, a 1-5 rating and a correction for one answer (``{"run_id"}`` of a live answer, ``{"message_id"}``
        of a reopened one), for operators and up (the role ``POST /feedback`` asks for)."""
        if not self.session.can("operator") or self.thread_id is None:
            return
        body = {"thread_id": self.thread_id} | answer

        async def send(given: dict[str, Any]) -> bool:
            try:
                await call(self.session, "POST", "/feedback", json=body | given)
            except Refused as exc:
                ui.notify(f"The server refused: {exc.message}", type="negative")
                return False
            ui.notify("Thanks: feedback recorded.")
            return True

        with ui.dialog() as dialog, ui.card().classes("w-[36rem]"):
            ui.label("What should the answer have said?").classes("text-subtitle1")
            correction = ui.textarea(validation={"say what was wrong": bool}).classes("w-full")

            async def correct() -> None:
                text = (correction.value or "").strip()
                if text and await send({"correction": text}):
                    dialog.close()

            with ui.row():
                ui.button("Send the correction", on_click=correct)
                ui.button("Cancel", on_click=dialog.close).props("flat")
        with actions:
            ui.button(icon="thumb_up", on_click=lambda: send({"thumbs": 1})).props("flat round dense").tooltip(
                "Good answer")  # fmt: skip
            ui.button(icon="thumb_down", on_click=lambda: send({"thumbs": -1})).props("flat round dense").tooltip(
                "Bad answer")  # fmt: skip
            ui.rating(max=5, size="sm", on_change=lambda e: send({"rating": int(e.value)}) if e.value else None
                      ).tooltip("Rate the answer, 1 to 5")  # fmt: skip
            ui.button("Correct it", icon="edit", on_click=dialog.open).props("flat dense no-caps")

    async def ask(self, question: str) -> None:
        self.question(question)
        text, extra, actions = self.answer_card()
        body: dict[str, Any] = {"message": question} | ({"thread_id": self.thread_id} if self.thread_id else {})
        shown, run_id = "", None
        try:
            async for event, data in stream(self.session, "/chat/stream", body):
                if event == "metadata":
                    self.thread_id, run_id = data.get("thread_id", self.thread_id), data.get("run_id")
                elif event.startswith("messages"):
                    chunk = data[0] if isinstance(data, list) else data
                    if str(chunk.get("type", "")).startswith("ai") and chunk.get("content"):
                        shown = str(chunk["content"])
                        text.set_content(shown)
                elif event == "custom" and isinstance(data, dict) and data.get("type") == "chat.answer":
                    with extra:
                        _answer_extras(data)
                elif event == "error":
                    text.set_content(f"{shown}\n\n**The answer failed:** {data.get('message') or data}")
        except Refused as exc:
            text.set_content(f"**The server refused:** {exc.message}")
            return
        if run_id is not None:
            self.feedback(actions, {"run_id": run_id})

    async def reopen(self, thread_id: str) -> None:
        """Show a conversation again from its thread's state, and continue it."""
        try:
            state = await call(self.session, "GET", f"/threads/{thread_id}/state")
        except Refused as exc:
            ui.notify(f"The server refused: {exc.message}", type="negative")
            return
        self.messages.clear()
        self.thread_id = thread_id
        for message in (state.get("values") or {}).get("messages") or []:
            if message.get("type") == "human":
                self.question(str(message.get("content")))
            elif message.get("type") == "ai":
                text, extra, actions = self.answer_card()
                text.set_content(str(message.get("content") or ""))
                with extra:
                    _answer_extras((message.get("response_metadata") or {}).get("rimas") or {})
                if message.get("id"):
                    self.feedback(actions, {"message_id": str(message["id"])})


def _first_question(thread: dict[str, Any]) -> str:
    for message in (thread.get("values") or {}).get("messages") or []:
        if message.get("type") == "human":
            text = str(message.get("content") or "")
            return text if len(text) <= 48 else text[:47] + "…"
    return str(thread.get("thread_id"))[:8]


@ui.page("/chat")
async def chat_page() -> None:
    signed_in = await require_session()
    if signed_in is None:
        return
    with frame("Chat", signed_in), ui.row().classes("w-full items-start gap-4 no-wrap"):
        with ui.column().classes("w-64 gap-1"):
            ui.label("Conversations").classes("text-subtitle2")
            threads = ui.column().classes("w-full gap-0")
        with ui.column().classes("grow gap-2"):
            messages = ui.column().classes("w-full gap-3")
            conversation = Conversation(signed_in, messages)
            with ui.row().classes("w-full items-center no-wrap"):
                question = ui.input(placeholder="Ask about sales, stock, prices, orders, customers, policies…")
                question.classes("grow").props("outlined dense")

                async def send() -> None:
                    text = (question.value or "").strip()
                    if text:
                        question.set_value("")
                        await conversation.ask(text)
                        await list_threads()

                def new() -> None:
                    conversation.thread_id = None
                    messages.clear()

                question.on("keydown.enter", send)
                ui.button(icon="send", on_click=send).tooltip("Ask")
                ui.button("New", on_click=new).props("flat").tooltip("Start a new conversation")

    async def list_threads() -> None:
        threads.clear()
        try:
            found = await call(signed_in, "POST", "/threads/search",
                               json={"metadata": {"graph_id": "chat"}, "limit": 20})  # fmt: skip
        except Refused as exc:
            with threads:
                ui.label(f"The server refused: {exc.message}").classes("text-negative")
            return
        with threads, ui.list().props("dense separator").classes("w-full"):
            for thread in found:
                with ui.item(on_click=lambda t=thread["thread_id"]: conversation.reopen(t)):
                    ui.item_label(_first_question(thread)).classes("text-body2")

    await list_threads()
