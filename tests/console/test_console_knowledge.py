"""The knowledge and models pages in a real browser: a viewer's policy question answered with passages whose
matching words are highlighted, and no admin controls; an admin adds a document through the form, finds it by
search and deletes it (confirmed in a dialog), after which the API no longer lists it; the models page shows the
delay, demand and anomaly models with the versions stored in the models folder and their charts. Page loads are
recorded as test properties. Screenshots: ``bench/out/console-knowledge.png`` (the viewer's search),
``console-knowledge-admin.png`` (the form, the added document found) and ``console-models.png``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from conftest import (
    KEYS,
    body_text,
    button,
    css,
    errors,
    open_page,
    shoot,
    sign_in,
    sign_out,
    type_into,
    wait_for,
    wait_text,
)

from ml.registry import latest

SEARCH = "input[placeholder^='Search the policies']"
QUESTION = "refund for a parcel a week late"
DOC = {"title": "Gift wrapping", "doc_id": "gift-wrapping",
       "content": "# Gift wrapping\n\n## Paper\n\nGift wrapping in recycled kraft paper is free for loyalty members."}


def _marks(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [m.text.lower() for m in browser.find_elements(By.CSS_SELECTOR, ".hit .passage mark")]


def _shown(browser: Any, selector: str) -> Any:
    """The first element ``selector`` finds, once it is displayed (an expansion opens with an animation)."""
    from selenium.webdriver.common.by import By

    return wait_for(browser, lambda b: [e for e in b.find_elements(By.CSS_SELECTOR, selector) if e.is_displayed()]
                    ).pop(0)  # fmt: skip


def _full_page(browser: Any, name: str) -> None:
    """Screenshot the whole page: the window made as tall as the page, then back."""
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1280, min(max(height + 150, 900), 4000))  # the window's frame takes some of it
    shoot(browser, name)
    browser.set_window_size(1280, 900)


def _pick(browser: Any, option: str) -> None:
    """Choose ``option`` in the ingest form's category select (a Quasar menu)."""
    from selenium.webdriver.common.by import By

    select = _shown(browser, ".ingest-category")
    select.click()
    wait_for(browser, lambda b: [o for o in b.find_elements(By.CSS_SELECTOR, ".q-menu .q-item")
                                 if o.text.strip() == option]).pop().click()  # fmt: skip
    wait_for(browser, lambda b: option in select.text)


def test_search_highlights_admin_ingests_and_deletes_and_the_models_show_their_cards(
    console: str, browser: Any, models_dir: Path, record_property: Callable[[str, object], None]
) -> None:
    from selenium.webdriver.common.by import By

    # a viewer: a policy question, passages with the question's words marked, no admin controls
    sign_in(browser, console, "viewer")
    record_property("load_knowledge_s", open_page(browser, console, "/knowledge", "Documents · policies"))
    assert "Refund and compensation policy" in body_text(browser)  # the documents, by category
    type_into(css(browser, SEARCH), QUESTION)
    marks = wait_for(browser, _marks)
    assert {"refund", "parcel", "late"} & {m.rstrip("s") for m in marks}, marks
    assert "Add or replace a document" not in body_text(browser)
    assert not browser.find_elements(By.XPATH, "//button[.//i[text()='delete']]")
    _full_page(browser, "knowledge")
    cited = "policy:refunds#compensation-tiers"  # a citation link (the chat's): its section first, marked
    open_page(browser, console, f"/knowledge?q={quote(cited)}", f"citation {cited}")
    assert f"citation {cited}" in css(browser, ".hit").text
    assert errors(browser) == []

    # an admin: add a document through the form, find it, delete it
    sign_out(browser)
    sign_in(browser, console, "admin")
    open_page(browser, console, "/knowledge", "Documents · policies")
    css(browser, ".q-expansion-item .q-item").click()
    type_into(_shown(browser, "input.ingest-title"), DOC["title"], submit=False)
    type_into(_shown(browser, "input.ingest-doc-id"), DOC["doc_id"], submit=False)
    _pick(browser, "shipping")
    _shown(browser, "textarea.ingest-content").send_keys(DOC["content"])
    button(browser, "Ingest").click()
    wait_for(browser, lambda b: "Ingested gift-wrapping: 1 chunk (1 new" in body_text(b))
    wait_for(browser, lambda b: "gift-wrapping · 1 section · 1 chunk" in body_text(b))
    type_into(css(browser, SEARCH), "is gift wrapping in kraft paper free?")
    wait_for(browser, lambda b: "kraft" in _marks(b))
    assert "citation policy:gift-wrapping#paper" in body_text(browser)
    _full_page(browser, "knowledge-admin")

    item = browser.find_element(By.XPATH, "//div[contains(@class, 'document')][contains(., 'gift-wrapping')]")
    item.find_element(By.XPATH, ".//button[.//i[text()='delete']]").click()
    button(browser, "Delete").click()  # the confirmation dialog's
    wait_for(browser, lambda b: "Deleted gift-wrapping: 1 chunk removed." in body_text(b))
    wait_for(browser, lambda b: "gift-wrapping ·" not in body_text(b))
    listed = httpx.get(f"{console}/knowledge/documents", headers={"x-api-key": KEYS["viewer"]}).json()
    assert "gift-wrapping" not in {d["doc_id"] for d in listed["documents"]}
    assert "shipping" in {d["doc_id"] for d in listed["documents"]}
    assert errors(browser) == []

    # the models: three cards with the stored versions and their charts
    started = time.perf_counter()
    record_property("load_models_s", open_page(browser, console, "/models", "Order anomalies"))
    for name in ("delay", "demand", "anomaly"):
        ref = latest(models_dir, name)
        assert ref is not None
        card = css(browser, f".model-{name}")
        wait_for(browser, lambda b, c=card, v=ref.version: v in c.text)
    text = body_text(browser)
    assert "LightGBM, calibrated (this model)" in text and "seasonal naive (last week)" in text
    assert "not recorded for this version" not in text
    for name in ("delay", "demand", "anomaly"):  # one chart per card: importance and the model's own plot
        wait_for(browser, lambda b, n=name: b.find_elements(By.CSS_SELECTOR, f".model-{n} .chart-{n} canvas"))
    record_property("load_models_charts_s", time.perf_counter() - started)
    css(browser, ".model-delay .q-expansion-item .q-item").click()  # the model card, rendered when opened
    wait_text(browser, "Holdout metrics (n = ")
    _full_page(browser, "models")
    assert errors(browser) == []


def test_highlight_escapes_the_passage_then_marks_the_question_words() -> None:
    from server.console.knowledge import highlight

    passage = "<b>Refunds</b> & refund_amount: refunded <i>late</i> parcels."
    assert highlight(passage, "a refund for late parcel") == (
        "&lt;b&gt;<mark>Refunds</mark>&lt;/b&gt; &amp; <mark>refund</mark>_amount: <mark>refunded</mark> "
        "&lt;i&gt;<mark>late</mark>&lt;/i&gt; <mark>parcels</mark>."
    )
    assert highlight("fish & chips", "amp lt") == "fish &amp; chips"  # query words never reach inside an entity
    assert highlight("for the order", "for the") == "for the order"  # stop words are not marked
