"""The operations console in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
nothing downloaded) driving ``rimas serve`` on this module's seeded database, through the pages a person uses.

Screenshots of each page go to ``bench/out/console-*.png``. The browser's console must hold no error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import API_KEYS, KEYS, REPO

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SHOTS = REPO / "bench" / "out"
WAIT = 30.0
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--window-size=1280,900")  # fmt: skip


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium session (its own profile folder), with the page's console log kept."""
    if not (CHROMIUM.exists() and DRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("the console tests need Debian's chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("no Chromium here: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def console(serve_process: Callable[..., Any], seeded_url: str, models_dir: Path) -> str:
    """``rimas serve`` with the console, API keys, the seeded database and the test models: its base URL."""
    server = serve_process({"RIMAS_DATABASE_URL": seeded_url, "RIMAS_SEED_ON_START": "false",
                            "RIMAS_TRAIN_MODELS_ON_START": "false", "RIMAS_MODELS_DIR": str(models_dir),
                            "RIMAS_API_KEYS": API_KEYS, "RIMAS_LANGGRAPH_CONFIG": str(REPO / "langgraph.json"),
                            "RIMAS_LOG_LEVEL": "WARNING"})  # fmt: skip
    server.start()
    return str(server.url)


def _errors(driver: Any) -> list[str]:
    """The browser console's errors (SEVERE entries)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _type(field: Any, text: str, submit: bool = True) -> None:
    from selenium.webdriver.common.keys import Keys

    field.send_keys(Keys.CONTROL + "a", Keys.DELETE)  # clear() does not reach Vue's model
    field.send_keys(text + (Keys.ENTER if submit else ""))


def test_sign_in_then_ask_the_chat_and_see_the_streamed_answer_with_its_table(
    console: str, browser: Any, db: psycopg.Connection[Any]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT)
    SHOTS.mkdir(exist_ok=True)
    browser.get(f"{console}/ui/chat")  # no session in this tab: the page sends it to the sign-in
    wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
    assert "Conversations" not in browser.find_element(By.TAG_NAME, "body").text
    browser.get(f"{console}/")  # the API's root links to the console
    key = wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
    assert browser.current_url == f"{console}/ui/"

    _type(key, "not-a-key")
    wait.until(lambda b: "That key is not valid." in b.find_element(By.TAG_NAME, "body").text)
    browser.save_screenshot(str(SHOTS / "console-signin.png"))
    _type(key, KEYS["viewer"])
    wait.until(lambda b: b.current_url == f"{console}/ui/chat")
    body = wait.until(shown.presence_of_element_located((By.TAG_NAME, "body")))
    wait.until(lambda b: "viewer-1 · viewer" in body.text)  # the header names the key and its role

    question = wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, "input[placeholder^='Ask about']")))
    _type(question, "How many units did store 1 sell in the last 7 days?")
    end = db.execute("SELECT max(date) AS d FROM sales_daily").fetchone()["d"]
    units = db.execute("SELECT sum(units) AS u FROM sales_daily WHERE store_id = 1 AND date BETWEEN %s AND %s",
                       (end - timedelta(days=6), end)).fetchone()["u"]  # fmt: skip
    wait.until(lambda b: f"{units:,}" in body.text)  # the number the database holds, in the streamed answer
    rows = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".q-table tbody tr"))
    assert len(rows) == 7  # the answer's table: one row per day
    assert "sales per day at store 1" in body.text
    assert "thumb_up" not in browser.page_source  # a viewer may not rate answers: no thumbs shown
    browser.save_screenshot(str(SHOTS / "console-chat.png"))

    _type(question, "and at store 2?")  # the follow-up continues the same conversation
    units2 = db.execute("SELECT sum(units) AS u FROM sales_daily WHERE store_id = 2 AND date BETWEEN %s AND %s",
                        (end - timedelta(days=6), end)).fetchone()["u"]  # fmt: skip
    wait.until(lambda b: f"{units2:,}" in body.text)
    assert _errors(browser) == []

    browser.find_element(By.XPATH, "//button[.//span[text()='Sign out']]").click()  # an operator rates answers
    key = wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
    _type(key, KEYS["operator"])
    question = wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, "input[placeholder^='Ask about']")))
    _type(question, "What's our refund policy for a parcel a week late?")
    thumbs = wait.until(shown.element_to_be_clickable((By.XPATH, "//button[.//i[text()='thumb_up']]")))
    thumbs.click()
    wait.until(lambda b: "feedback recorded" in b.find_element(By.TAG_NAME, "body").text)
    rated = db.execute("SELECT actor, kind, thumbs FROM feedback ORDER BY feedback_id DESC LIMIT 1").fetchone()
    assert (rated["actor"], rated["kind"], rated["thumbs"]) == ("operator-1", "thumbs", 1)
    assert _errors(browser) == []
