"""``/ui/knowledge``: policy and case search with the question's words highlighted in each passage, the documents
of a collection by category, and, for admins, adding a document and deleting one.

A search goes to ``POST /knowledge/search`` (question, number of passages, category, collection); each hit shows its
title, section, relevance, citation id and passage. The passage is escaped first and then the words whose search
term (:func:`rag.sparse.terms`: lower-cased, stop words dropped, endings folded) is one of the question's are
wrapped in ``<mark>``; it is shown as Markdown (the policies' lists and tables), sanitised again in the browser.
The categories and documents come from ``GET /knowledge/documents`` (every allowed category with its counts, then
the documents). An ``admin`` session
also sees a form for ``POST /knowledge/ingest`` and a delete button, confirmed in a dialog, for each document that
is not a packaged policy (``DELETE /knowledge/documents/{doc_id}``); others see neither. ``?q=`` opens the page
searching for it; a citation id (``policy:shipping#upgrades``, as the chat's links send) searches its document and
shows the cited section first.
"""

from __future__ import annotations

import html
import re
from typing import Any

from nicegui import ui

from rag.sparse import STOP_WORDS, stem, terms
from server.console.api import Refused, Session, call
from server.console.layout import frame, require_session

COLLECTIONS = ["policies", "cases"]
PASSAGES = 5
WORD = re.compile(r"[A-Za-z]+|\d+(?:\.\d+)?")
CITATION = re.compile(r"^(policy|case):([a-z0-9][a-z0-9_-]{0,79})#[\w-]+$")
SOURCE_COLORS = {"packaged": "blue-grey", "admin": "teal", "case": "purple"}
MARKDOWN = ["tables", "code-friendly"]  # code-friendly: ``order_id`` stays a word, not an emphasis
EXAMPLE = "# Title\n\n## A section\n\nWhat the section says.\n\n## Another section\n\n…"


def count(n: int, word: str) -> str:
    """``1 chunk``, ``3 chunks``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def highlight(text: str, query: str) -> str:
    """``text`` as HTML, escaped, with each word whose search term is one of ``query``'s wrapped in ``<mark>``."""
    wanted = set(terms(query))
    out: list[str] = []
    last = 0
    for match in WORD.finditer(text):
        word = match.group().lower()
        if word in STOP_WORDS or stem(word) not in wanted:
            continue
        out.append(html.escape(text[last : match.start()]))
        out.append(f"<mark>{html.escape(match.group())}</mark>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


class Knowledge:
    """The page's search, document list and (for admins) ingest form, over one collection at a time."""

    def __init__(self, signed_in: Session, collection: str = "policies") -> None:
        self.session = signed_in
        self.collection = collection
        self.categories: list[str] = []
        self.citation: str | None = None
        self.form_category: ui.select | None = None
        with ui.card().classes("w-full gap-2"):
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                self.query = ui.input(placeholder="Search the policies, e.g. refund for a parcel a week late")
                self.query.classes("grow").props("outlined dense clearable")
                self.query.on("keydown.enter", self.search)
                ui.button("Search", icon="search", on_click=self.search)
            with ui.row().classes("items-center gap-3"):
                self.scope = ui.toggle(COLLECTIONS, value=collection, on_change=self.switch).props("dense no-caps")
                self.category = ui.select([], label="category", clearable=True).props("dense outlined")
                self.category.classes("min-w-48")
                self.k = ui.select([3, 5, 10, 20], value=PASSAGES, label="passages").props("dense outlined")
                self.k.classes("w-28")
            self.hits = ui.column().classes("w-full gap-2")
        with ui.row().classes("w-full items-center"):
            self.heading = ui.label("Documents").classes("text-h6")
            ui.space()
            self.totals = ui.label().classes("text-caption")
        if signed_in.can("admin"):
            self.ingest_form()
        self.documents = ui.column().classes("w-full gap-3")

    # -- search ------------------------------------------------------------------------------------------------

    async def search(self) -> None:
        text = (self.query.value or "").strip()
        self.hits.clear()
        if not text:
            return
        body: dict[str, Any] = {"query": text, "k": int(self.k.value or PASSAGES), "collection": self.collection}
        cited = CITATION.match(text)
        self.citation = text if cited else None
        if cited:  # a citation: its document's passages, the cited section first
            body.update(query=re.sub(r"[:#_-]", " ", text), k=20, filters={"doc_id": cited.group(2)},
                        collection="cases" if cited.group(1) == "case" else "policies")  # fmt: skip
        elif self.category.value:
            body["category"] = self.category.value
        try:
            found = await call(self.session, "POST", "/knowledge/search", json=body)
        except Refused as exc:
            with self.hits:
                ui.label(f"The server refused: {exc.message}").classes("text-negative")
            return
        hits = sorted(found["hits"], key=lambda h: h["citation_id"] != self.citation)
        with self.hits:
            if not hits:
                ui.label(f"No passage is relevant enough to “{text}”.").classes("text-body2 text-grey-8")
            for hit in hits:
                self.hit(hit, text)

    def hit(self, hit: dict[str, Any], query: str) -> None:
        cited = hit["citation_id"] == self.citation
        with ui.card().classes("w-full gap-1 hit" + (" bg-amber-1" if cited else "")).props("flat bordered"):
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                ui.label(hit["title"]).classes("text-subtitle1 text-weight-medium")
                ui.label(f"· {hit['section']}").classes("text-subtitle2 text-grey-8")
                ui.space()
                category = (hit.get("metadata") or {}).get("category")
                if category:
                    ui.badge(str(category), color="grey-6").props("outline")
                ui.badge(f"relevance {hit['score']:.2f}", color="primary").tooltip(
                    "cosine similarity of question and passage")  # fmt: skip
            ui.markdown(highlight(hit["text"], query), extras=MARKDOWN).classes("passage text-body2 w-full")
            ui.label(f"citation {hit['citation_id']}").classes("text-caption text-grey-7 font-mono")

    # -- documents ---------------------------------------------------------------------------------------------

    async def switch(self) -> None:
        self.collection = str(self.scope.value)
        self.hits.clear()
        await self.load()

    async def load(self) -> None:
        """The collection's documents by category (and the categories for the filter and the form)."""
        try:
            listing = await call(self.session, "GET", "/knowledge/documents", params={"collection": self.collection})
        except Refused as exc:
            self.documents.clear()
            with self.documents:
                ui.label(f"The server refused: {exc.message}").classes("text-negative")
            return
        self.categories = [c["category"] for c in listing["categories"]]
        self.category.set_options(self.categories, value=self.category.value)
        if self.form_category is not None:
            self.form_category.set_options(self.categories, value=self.form_category.value)
        documents = listing["documents"]
        self.heading.set_text(f"Documents · {self.collection}")
        chunks = sum(d["chunks"] for d in documents)
        self.totals.set_text(f"{count(len(documents), 'document')} · {count(chunks, 'chunk')}")
        self.documents.clear()
        with self.documents:
            if not documents:
                ui.label(f"The {self.collection} collection holds no document yet.").classes("text-grey-8")
            with ui.grid(columns=2).classes("w-full gap-3"):
                for group in listing["categories"]:
                    if group["documents"]:
                        self.category_card(group, [d for d in documents if d["category"] == group["category"]])
            empty = [c["category"] for c in listing["categories"] if not c["documents"]]
            if empty and documents:
                ui.label(f"No documents in: {', '.join(empty)}").classes("text-caption text-grey-7")

    def category_card(self, group: dict[str, Any], documents: list[dict[str, Any]]) -> None:
        with ui.card().classes("w-full gap-0 p-0").props("flat bordered"):
            with ui.row().classes("w-full items-center px-3 py-2 bg-grey-2"):
                ui.icon("folder", color="primary")
                ui.label(group["category"].replace("_", " ")).classes("text-subtitle1 text-weight-medium")
                ui.space()
                ui.label(f"{count(group['documents'], 'document')} · {count(group['chunks'], 'chunk')}").classes(
                    "text-caption")  # fmt: skip
            with ui.list().props("dense separator").classes("w-full"):
                for document in documents:
                    self.document_item(document)

    def document_item(self, document: dict[str, Any]) -> None:
        with ui.item().classes("document"):
            with ui.item_section():
                ui.item_label(document["title"])
                ui.item_label(f"{document['doc_id']} · {count(document['sections'], 'section')} · "
                              f"{count(document['chunks'], 'chunk')}").props("caption")  # fmt: skip
            with ui.item_section().props("side"), ui.row().classes("items-center gap-1 no-wrap"):
                ui.badge(document["source"], color=SOURCE_COLORS.get(document["source"], "grey"))
                if self.session.can("admin") and document["source"] != "packaged":
                    ui.button(icon="delete", on_click=lambda d=document: self.confirm_delete(d)).props(
                        "flat round dense color=negative").tooltip(f"Delete {document['doc_id']}")  # fmt: skip

    # -- admin -------------------------------------------------------------------------------------------------

    def confirm_delete(self, document: dict[str, Any]) -> None:
        with ui.dialog() as dialog, ui.card():
            ui.label(f"Delete “{document['title']}”?").classes("text-h6")
            ui.label(f"All {count(document['chunks'], 'chunk')} of {document['doc_id']} leave the {self.collection} "
                     "collection; searches stop citing it.").classes("text-body2")  # fmt: skip
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Delete", on_click=lambda: self.delete(dialog, document)).props("color=negative")
        dialog.open()

    async def delete(self, dialog: ui.dialog, document: dict[str, Any]) -> None:
        dialog.close()
        try:
            done = await call(self.session, "DELETE", f"/knowledge/documents/{document['doc_id']}",
                              params={"collection": self.collection})  # fmt: skip
        except Refused as exc:
            ui.notify(f"The server refused: {exc.message}", type="negative")
            return
        ui.notify(f"Deleted {done['doc_id']}: {count(done['deleted_chunks'], 'chunk')} removed.", type="positive")
        self.hits.clear()
        await self.load()

    def ingest_form(self) -> None:
        with ui.expansion("Add or replace a document", icon="upload_file").classes("w-full").props(
                "dense header-class=text-primary"):  # fmt: skip
            with ui.row().classes("w-full gap-2"):
                self.title = ui.input("Title").props("outlined dense input-class=ingest-title").classes("grow")
                self.doc_id = ui.input("Document id (default: from the title)").props(
                    "outlined dense input-class=ingest-doc-id").classes("w-72")  # fmt: skip
                self.form_category = ui.select(self.categories, label="category").props("outlined dense")
                self.form_category.classes("min-w-40 ingest-category")
            self.content = ui.textarea("Content (Markdown: one section per heading)", placeholder=EXAMPLE)
            self.content.props("outlined input-class=ingest-content").classes("w-full")
            with ui.row().classes("items-center gap-2"):
                ui.button("Ingest", icon="upload", on_click=self.ingest)
                self.outcome = ui.label().classes("text-body2")

    async def ingest(self) -> None:
        assert self.form_category is not None
        body = {"title": (self.title.value or "").strip(), "content": self.content.value or "",
                "category": self.form_category.value, "collection": self.collection,
                "doc_id": (self.doc_id.value or "").strip() or None}  # fmt: skip
        try:
            done = await call(self.session, "POST", "/knowledge/ingest", json=body)
        except Refused as exc:
            self.outcome.set_text(f"The server refused: {exc.message}")
            self.outcome.classes(replace="text-negative")
            return
        warnings = " ".join(done.get("warnings") or [])
        self.outcome.set_text(f"Ingested {done['doc_id']}: {count(done['chunks'], 'chunk')} ({done['added']} new, "
                              f"{done['unchanged']} unchanged, {done['removed']} removed). {warnings}")  # fmt: skip
        self.outcome.classes(replace="text-positive")
        await self.load()


@ui.page("/knowledge")
async def knowledge_page(q: str | None = None) -> None:
    signed_in = await require_session()
    if signed_in is None:
        return
    with frame("Knowledge", signed_in):
        page = Knowledge(signed_in, "cases" if (q or "").startswith("case:") else "policies")
    await page.load()
    if q:
        page.query.set_value(q)
        await page.search()
