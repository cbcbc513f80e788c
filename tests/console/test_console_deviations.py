"""The deviation workflow through the console in a real browser: an operator uploads a CSV (a bad row is reported by
line, the rest scored into deviations), the refund above the automation limit waits in the approvals inbox where
the operator cannot decide it, an approver is refused the refund beyond their authority with the server's reason
and approves the one within it, and the order page shows the ledger row in the approver's name and the resolved
deviation; the KPI page charts the window. Screenshots: ``bench/out/console-{upload,approvals,order,deviations}.png``.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import psycopg
from conftest import body_text, button, css, errors, open_page, shoot, sign_in, sign_out, wait_for, wait_text

BASE = {"customer_id": "C90001", "warehouse_block": "B", "mode_of_shipment": "Road", "carrier_name": "Trailway",
        "customer_care_calls": 3, "customer_rating": 4, "prior_purchases": 3, "gender": "F",
        "product_importance": "medium", "cost_of_product": 900.0, "discount_offered": 60, "weight_in_gms": 4200,
        "payment_status": "paid", "order_status": "shipped", "delivery_date": ""}  # fmt: skip


def _orders(folder: Path) -> Path:
    """Three orders a week late: a 60 %-discounted one (value 360 USD: a 90 USD refund, an approver's to decide), an
    undiscounted one (900 USD: a 450 USD refund, beyond an approver's 200 USD authority) and one from a block that
    does not exist."""
    today = dt.date.today()
    dates = {"order_date": str(today - dt.timedelta(days=14)), "ship_date": str(today - dt.timedelta(days=12)),
             "promised_delivery_date": str(today - dt.timedelta(days=7))}  # fmt: skip
    rows = [BASE | dates | {"order_id": "UI-REFUND-1"},
            BASE | dates | {"order_id": "UI-REFUND-2", "customer_id": "C90002", "discount_offered": 0,
                            "customer_care_calls": 6},
            BASE | dates | {"order_id": "UI-BAD-3", "warehouse_block": "Z"}]  # fmt: skip
    path = folder / "orders.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _pending_row(browser: Any, text: str) -> Any:
    from selenium.webdriver.common.by import By

    return wait_for(browser, lambda b: b.find_element(By.XPATH, f"//tr[contains(., '{text}')]"))


def test_upload_then_approve_a_refund_and_see_it_in_the_ledger(
    console: str, browser: Any, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, console, "operator")
    open_page(browser, console, "/upload", "Score a CSV of orders")
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(_orders(tmp_path)))
    wait_text(browser, "· completed", 60)
    wait_text(browser, "2 good · 1 refused")
    text = body_text(browser)
    assert "warehouse_block: unknown value 'Z' (allowed: A, B, C, D, F)" in text  # the report, by line and field
    lines = [td.text for td in browser.find_elements(By.CSS_SELECTOR, ".q-table tbody tr td:first-child")]
    assert "4" in lines
    wait_text(browser, "UI-REFUND-1")  # the job's deviations, each a link to its order
    assert "UI-REFUND-2" in body_text(browser)
    shoot(browser, "upload")

    # the refunds wait for a person; an operator sees them but gets no controls
    asked = "the major tier refunds 25% of 360.00 USD paid"
    beyond = "the major tier refunds 50% of 900.00 USD paid"
    wait_for(browser, lambda b: open_page(b, console, "/approvals", "pending") and asked in body_text(b), 120)
    assert "Submit decision" not in body_text(browser)
    assert "deciding needs the approver role" in body_text(browser)

    sign_out(browser)
    sign_in(browser, console, "approver")
    open_page(browser, console, "/approvals", asked)
    wait_for(browser, lambda b: beyond in body_text(b), 60)
    _pending_row(browser, beyond).click()
    wait_text(browser, "450.00 USD")
    button(browser, "Submit decision").click()
    wait_text(browser, "The server refused")  # beyond an approver's authority: the server says why
    assert "admin" in body_text(browser)
    shoot(browser, "approval-refused")
    button(browser, "Reject").click()
    button(browser, "Submit decision").click()
    wait_text(browser, "issue_refund: a rejection needs a comment")  # checked before anything is sent

    _pending_row(browser, asked).click()
    wait_text(browser, "90.00 USD")
    wait_text(browser, "Audit timeline")
    shoot(browser, "approvals")
    button(browser, "Submit decision").click()
    wait_text(browser, "Decided")
    refunds = db.execute("SELECT amount, actor FROM refunds WHERE order_id = 'UI-REFUND-1'").fetchall()
    assert [(float(r["amount"]), r["actor"]) for r in refunds] == [(90.0, "approver-1")]
    assert db.execute("SELECT count(*) AS n FROM refunds WHERE order_id = 'UI-REFUND-2'").fetchone()["n"] == 0

    open_page(browser, console, "/orders/UI-REFUND-1", "Ledger (")
    wait_text(browser, "refund")
    ledger = [tr.text for tr in browser.find_elements(By.CSS_SELECTOR, ".q-table tbody tr")]
    assert any("refund" in row and "approver-1" in row for row in ledger), ledger
    status = db.execute("SELECT status FROM deviations WHERE order_id = 'UI-REFUND-1'").fetchone()["status"]
    assert status in ("resolved", "escalated") and status in body_text(browser)
    assert "A 60% discount raises the delay risk" in body_text(browser)  # the risk factors
    shoot(browser, "order")

    open_page(browser, console, "/deviations", "orders scored")
    wait_for(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, ".nicegui-echart canvas")) >= 5)
    css(browser, "a[href*='UI-REFUND-1']")
    wait_text(browser, "1-2 of 2")  # the list's pager: both deviations on one page
    shoot(browser, "deviations")
    assert errors(browser) == []
