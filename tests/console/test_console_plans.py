"""The plans pages in a real browser: an operator makes a plan for store 3 through the form (three items counted at
0, so each needs an order) and sees it pending with its lines and a chart each, and no decision controls; an
approver opens it, is stopped by the page for a quantity over the edit bound and by the server (word for word) for
one within it but beyond the budget or their authority, then approves with one line's quantity edited and a
comment: the purchase order written for that item has the edited quantity, in the approver's name, and the
timeline shows the approval. Screenshots: ``bench/out/console-plans.png``, ``console-plan.png`` (the whole page).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
from conftest import KEYS, body_text, button, css, errors, open_page, shoot, sign_in, type_into, wait_for, wait_text

ITEMS = (1001, 1004, 1007)
PLAN_URL = re.compile(r"/ui/plans/([0-9a-f-]{36})$")


def _choose(browser: Any, label: str, *options: str) -> None:
    """Open the (first) select labelled ``label`` and click the options whose text starts with each of ``options``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    select = (f"//label[contains(@class,'q-select')][.//div[contains(@class,'q-field__label') and "
              f"normalize-space()='{label}']]")  # fmt: skip
    wait_for(browser, lambda b: b.find_element(By.XPATH, select)).click()
    for option in options:
        item = (f"//div[contains(@class,'q-menu')]//div[contains(@class,'q-item') and "
                f"starts-with(normalize-space(.), '{option}')]")  # fmt: skip
        wait_for(browser, lambda b, path=item: b.find_element(By.XPATH, path)).click()
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)


def _full_page(browser: Any, name: str) -> None:
    """A screenshot of the whole page: the window made as tall as the page for it."""
    for _ in range(2):  # once more: the page may lay out taller in the taller window
        height = int(browser.execute_script("return document.documentElement.scrollHeight"))
        browser.set_window_size(1280, min(max(height, 900), 6000))
    browser.execute_script("window.scrollTo(0, 0)")
    shoot(browser, name)
    browser.set_window_size(1280, 900)


def test_make_a_plan_then_approve_it_with_an_edited_line(
    console: str, browser: Any, db: psycopg.Connection[Any], record_property: Callable[[str, object], None]
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, console, "operator")
    record_property("load_plans_empty_s", open_page(browser, console, "/plans", "New plan"))
    _choose(browser, "Store", "3 · ")
    _choose(browser, "Items", *(f"{sku} · " for sku in ITEMS))
    stocks = wait_for(browser, lambda b: (found := b.find_elements(By.CSS_SELECTOR, ".plan-stock input"))
                      and len(found) == len(ITEMS) and found)  # fmt: skip
    for field in stocks:
        type_into(field, "0", submit=False)
    button(browser, "Create plan").click()
    plan_id = wait_for(browser, lambda b: (m := PLAN_URL.search(b.current_url)) and m.group(1), 120)
    wait_text(browser, "pending approval")
    wait_for(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, ".nicegui-echart canvas")) >= len(ITEMS))
    rows = browser.find_elements(By.CSS_SELECTOR, ".q-table tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "td").text for r in rows] == [str(sku) for sku in ITEMS]
    assert "approving or rejecting a plan needs the approver role" in body_text(browser)
    assert not browser.find_elements(By.XPATH, "//button[.//span[normalize-space()='Approve']]")
    assert db.execute("SELECT status, created_by FROM plans WHERE plan_id = %s", (plan_id,)).fetchone() == {
        "status": "pending_approval", "created_by": "operator-1"}  # fmt: skip
    record_property("load_plans_s", open_page(browser, console, "/plans", plan_id[:8]))
    shoot(browser, "plans")
    assert errors(browser) == []

    button(browser, "Sign out").click()
    sign_in(browser, console, "approver")
    record_property("load_plan_s", open_page(browser, console, f"/plans/{plan_id}", "Decision"))
    wait_for(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, ".nicegui-echart canvas")) >= len(ITEMS))
    quantity = css(browser, ".plan-qty input")  # the first line's: item 1001
    series = httpx.get(f"{console}/plans/{plan_id}/series", headers={"x-api-key": KEYS["approver"]}).json()
    proposed, bound = int(quantity.get_attribute("value")), series["lines"][0]["limits"]["max_order_qty"]
    assert proposed > 1 and series["lines"][0]["item_id"] == 1001
    type_into(quantity, str(bound + 1), submit=False)  # over the edit bound: the page says so, nothing is sent
    wait_text(browser, f"0 to {bound:,} units")
    button(browser, "Approve").click()
    wait_text(browser, "item 1001: an edit is out of bounds")
    type_into(quantity, str(bound), submit=False)  # within the bound, over the budget or the approver's authority
    wait_for(browser, lambda b: f"0 to {bound:,} units" not in body_text(b))  # the layout settled: click where it is
    button(browser, "Approve").click()
    wait_text(browser, "The server refused: edits[0].order_qty: ")
    said = body_text(browser)
    assert "beyond the approver authority" in said or "over its budget" in said, said[-1500:]
    assert db.execute("SELECT count(*) AS n FROM purchase_orders WHERE thread_id = %s", (plan_id,)).fetchone()[
        "n"] == 0  # fmt: skip

    edited = proposed // 2
    type_into(quantity, str(edited), submit=False)
    type_into(css(browser, "input[aria-label='Comment (for the audit trail)']"), "half now, the rest next week",
              submit=False)  # fmt: skip
    button(browser, "Approve").click()
    wait_text(browser, "What was written")
    written = db.execute("SELECT sku, quantity, actor FROM purchase_orders WHERE thread_id = %s ORDER BY sku",
                         (plan_id,)).fetchall()  # fmt: skip
    assert written[0] == {"sku": 1001, "quantity": edited, "actor": "approver-1"}
    assert {r["actor"] for r in written} == {"approver-1"}
    decided = db.execute("SELECT status, decided_by, decision_comment FROM plans WHERE plan_id = %s",
                         (plan_id,)).fetchone()  # fmt: skip
    assert decided == {"status": "approved", "decided_by": "approver-1",
                       "decision_comment": "half now, the rest next week"}  # fmt: skip
    timeline = css(browser, ".q-timeline").text
    assert "approved" in timeline and "“half now, the rest next week”; 1 line(s) edited" in timeline
    assert "finalized" in timeline and "Decision" not in body_text(browser)  # decided: no controls left
    wait_for(browser, lambda b: not b.find_elements(By.CSS_SELECTOR, ".q-notification"), 15)  # the toast gone
    _full_page(browser, "plan")
    assert errors(browser) == []
