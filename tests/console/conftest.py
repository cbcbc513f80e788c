"""Fixtures of the console's browser tests: this module's database seeded with the small synthetic data, small
demand, delay and anomaly models trained on it in a temp folder, ``rimas serve`` with the console and a key per
role on them, and headless Chromium (Debian's ``chromium`` and ``chromium-driver``: nothing downloaded).

The helpers below are what every page test does: sign in, type into a Quasar field, wait for text, look at the
browser's console, save a screenshot under ``bench/out/`` and time a page load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ml.anomaly import AnomalyTrainConfig, save_anomaly, train_anomaly
from ml.data import load_orders_db, load_sales_db
from ml.delay.artifacts import save_delay
from ml.delay.train import DelayTrainConfig, train_delay
from ml.demand.artifacts import save_demand
from ml.demand.train import DemandTrainConfig, train_demand
from server.db import connect
from server.seed import seed_database

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "bench" / "out"
KEYS = {"viewer": "view-key", "operator": "op-key", "approver": "appr-key", "admin": "admin-key"}
API_KEYS = ",".join(f"{role}-1:{key}:{role}" for role, key in KEYS.items())
CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WAIT = 30.0
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--window-size=1280,900")  # fmt: skip


@pytest.fixture(scope="module")
def seeded_url(database_url: str) -> str:
    with connect(database_url) as conn:
        seed_database(conn, seed=7, scale="small")
    return database_url


@pytest.fixture(scope="module")
def models_dir(seeded_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demand (horizon 28), delay and anomaly models trained on the seeded data, stored as the server stores them."""
    folder = tmp_path_factory.mktemp("models")
    with connect(seeded_url) as conn:
        sales, orders = load_sales_db(conn), load_orders_db(conn)
    save_demand(train_demand(sales, DemandTrainConfig(horizon=28, max_rounds=60, train_days=182),
                             source="small seed"), folder)  # fmt: skip
    save_delay(train_delay(orders, DelayTrainConfig(folds=3), source="small seed"), folder)
    save_anomaly(train_anomaly(orders, AnomalyTrainConfig(n_estimators=50), source="small seed"), folder)
    return folder


@pytest.fixture
def console(serve_process: Callable[..., Any], seeded_url: str, models_dir: Path) -> str:
    """``rimas serve`` with the console, a key per role, the seeded database and the test models: its base URL."""
    server = serve_process({"RIMAS_DATABASE_URL": seeded_url, "RIMAS_SEED_ON_START": "false",
                            "RIMAS_TRAIN_MODELS_ON_START": "false", "RIMAS_MODELS_DIR": str(models_dir),
                            "RIMAS_API_KEYS": API_KEYS, "RIMAS_LANGGRAPH_CONFIG": str(REPO / "langgraph.json"),
                            "RIMAS_LOG_LEVEL": "WARNING"})  # fmt: skip
    server.start()
    return str(server.url)


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
    driver.set_page_load_timeout(WAIT)
    SHOTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


# -- what every page test does ----------------------------------------------------------------------------------


def errors(driver: Any) -> list[str]:
    """The browser console's errors (SEVERE entries) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def type_into(field: Any, text: str, submit: bool = True) -> None:
    """Replace a field's text (``clear()`` does not reach Vue's model) and, by default, press Enter."""
    from selenium.webdriver.common.keys import Keys

    field.send_keys(Keys.CONTROL + "a", Keys.DELETE)
    field.send_keys(text + (Keys.ENTER if submit else ""))


def body_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def wait_for(driver: Any, check: Callable[[Any], Any], seconds: float = WAIT) -> Any:
    """The first truthy ``check(driver)`` within ``seconds`` (a failure names what was on the page)."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + seconds
    while True:
        try:
            found = check(driver)
        except WebDriverException:  # not there yet, or gone stale between two renders: look again
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not shown within {seconds:.0f} s; the page said:\n{body_text(driver)[:2000]}")
        time.sleep(0.1)


def wait_text(driver: Any, text: str, seconds: float = WAIT) -> None:
    wait_for(driver, lambda d: text in body_text(d), seconds)


def css(driver: Any, selector: str) -> Any:
    """The first element ``selector`` finds, once it is there."""
    from selenium.webdriver.common.by import By

    return wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, selector))


def button(driver: Any, label: str) -> Any:
    """The (first visible) button whose text is ``label``, once it can be clicked."""
    from selenium.webdriver.common.by import By

    def find(d: Any) -> Any:
        found = [b for b in d.find_elements(By.XPATH, f"//button[.//span[normalize-space()='{label}']]")
                 if b.is_displayed() and b.is_enabled()]  # fmt: skip
        return found[0] if found else None

    return wait_for(driver, find)


def sign_in(driver: Any, base: str, role: str) -> None:
    """Open the sign-in page (unless it is shown) and sign in with ``role``'s key; back once the header names it."""
    from selenium.webdriver.common.by import By

    if not driver.find_elements(By.CSS_SELECTOR, "input[type=password]"):
        driver.get(f"{base}/ui/")
    type_into(css(driver, "input[type=password]"), KEYS[role])
    wait_text(driver, f"{role}-1 · {role}")


def sign_out(driver: Any) -> None:
    """Sign out with the header's button; back once the sign-in page shows (a page asked for while the console is
    still navigating there can hang Chromium's page load)."""
    button(driver, "Sign out").click()
    css(driver, "input[type=password]")


def open_page(driver: Any, base: str, path: str, ready: str) -> float:
    """Open ``/ui{path}`` and wait until ``ready`` shows: the seconds from asking to seeing it."""
    started = time.perf_counter()
    driver.get(f"{base}/ui{path}")
    wait_text(driver, ready)
    return time.perf_counter() - started


def shoot(driver: Any, name: str) -> None:
    """Save the window as ``bench/out/console-<name>.png``."""
    driver.save_screenshot(str(SHOTS / f"console-{name}.png"))
