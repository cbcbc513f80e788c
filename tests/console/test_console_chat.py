"""The console's sign-in and chat in a real browser: a wrong key refused, a viewer's question answered as it streams
with the table (and its chart) of the numbers the database holds, a follow-up in the same conversation, and an
operator's thumbs up, rating and correction stored as feedback on that answer. Screenshots:
``bench/out/console-signin.png``, ``console-chat.png``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
from conftest import KEYS, body_text, button, css, errors, shoot, sign_in, sign_out, type_into, wait_for, wait_text

ASK = "input[placeholder^='Ask about']"


def _units(db: psycopg.Connection[Any], store: int) -> int:
    end = db.execute("SELECT max(date) AS d FROM sales_daily").fetchone()["d"]
    return int(db.execute("SELECT sum(units) AS u FROM sales_daily WHERE store_id = %s AND date BETWEEN %s AND %s",
                          (store, end - timedelta(days=6), end)).fetchone()["u"])  # fmt: skip


def test_sign_in_then_ask_the_chat_and_see_the_streamed_answer_with_its_table(
    console: str, browser: Any, db: psycopg.Connection[Any]
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{console}/ui/chat")  # no session in this tab: the page sends it to the sign-in
    css(browser, "input[type=password]")
    assert "Conversations" not in body_text(browser)
    browser.get(f"{console}/")  # the API's root links to the console
    key = css(browser, "input[type=password]")
    assert browser.current_url == f"{console}/ui/"

    type_into(key, "not-a-key")
    wait_text(browser, "That key is not valid.")
    shoot(browser, "signin")
    type_into(key, KEYS["viewer"])
    wait_for(browser, lambda b: b.current_url == f"{console}/ui/chat")
    wait_text(browser, "viewer-1 · viewer")  # the header names the key and its role

    type_into(css(browser, ASK), "How many units did store 1 sell in the last 7 days?")
    wait_text(browser, f"{_units(db, 1):,}")  # the number the database holds, in the streamed answer
    rows = wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".q-table tbody tr"))
    assert len(rows) == 7  # the answer's table: one row per day
    assert "sales per day at store 1" in body_text(browser)
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".nicegui-echart canvas"))  # and its chart
    assert "thumb_up" not in browser.page_source  # a viewer may not rate answers: no thumbs shown
    shoot(browser, "chat")

    type_into(css(browser, ASK), "and at store 2?")  # the follow-up continues the same conversation
    wait_text(browser, f"{_units(db, 2):,}")
    assert errors(browser) == []

    sign_out(browser)  # an operator rates answers
    sign_in(browser, console, "operator")
    type_into(css(browser, ASK), "What's our refund policy for a parcel a week late?")
    wait_for(browser, lambda b: b.find_element(By.XPATH, "//button[.//i[text()='thumb_up']]")).click()
    wait_text(browser, "feedback recorded")
    browser.find_elements(By.CSS_SELECTOR, ".q-rating__icon-container")[3].click()  # four stars of five
    wait_for(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, ".q-notification"), 15)  # it covers the row
    button(browser, "Correct it").click()
    type_into(css(browser, ".q-dialog textarea"), "Say the refund share first: 50 % for 7-13 days late.", False)
    button(browser, "Send the correction").click()
    wait_for(browser, lambda b: db.execute("SELECT count(*) AS n FROM feedback WHERE kind = 'correction'"
                                           ).fetchone()["n"] == 1)  # fmt: skip
    rated = db.execute("SELECT actor, kind, thumbs, rating, correction, run_id FROM feedback "
                       "ORDER BY feedback_id").fetchall()  # fmt: skip
    assert [(r["actor"], r["kind"], r["thumbs"], r["rating"]) for r in rated] == [
        ("operator-1", "thumbs", 1, None), ("operator-1", "rating", None, 4), ("operator-1", "correction", None, None)]
    assert rated[2]["correction"].startswith("Say the refund share first") and len({r["run_id"] for r in rated}) == 1
    assert errors(browser) == []
