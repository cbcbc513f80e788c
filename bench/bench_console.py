"""Benchmark: how long each page of the operations console takes to show its content, on the demo data.

Starts one ``rimas serve`` (auth off: the console signs in the local admin) on a fresh data folder; on its first
start it seeds the demo data and trains its models (reported apart). Then it gives the console something to show,
as people would: ``--orders`` recent orders of the synthetic demo feed uploaded as a CSV (dates moved so the newest
is two days old; every critical one starts a deviation workflow, many of which wait for approval), a store plan
(``POST /plans``) and a chat question. Headless Chromium (Debian's package) then opens every page ``--repeat``
times: the time is from asking for the page (a new page load, as a person following a link) to the moment its
content is on screen (a text only the loaded page shows, after the page's API calls). Reports median and max per
page beside the target (1 s) and the browser console's errors, and saves a tall screenshot of each page as
``bench/out/console-demo-<page>.png``.

Figures, not pass/fail: exit 1 only when a page did not show or the browser logged errors. ``python
bench/bench_console.py [--orders 1500] [--repeat 5]``; JSON in bench/out/bench_console.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from _serve import fresh_server

from ml.synth import generate

OUT = Path(__file__).resolve().parent / "out"
TARGET_S = 1.0
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def recent_orders(count: int) -> bytes:
    """The ``count`` newest orders of the synthetic demo feed as CSV, moved so the newest is two days old."""
    orders = generate(seed=7, scale="demo")["orders"].sort_values("order_date").tail(count).copy()
    shift = pd.Timestamp(dt.date.today() - dt.timedelta(days=2)) - orders["order_date"].max()
    for column in ("order_date", "promised_delivery_date", "ship_date", "delivery_date"):
        orders[column] = (orders[column] + shift).dt.strftime("%Y-%m-%d")
    orders["order_id"] = ["WEB-" + str(o)[4:] for o in orders["order_id"]]
    buffer = io.StringIO()
    orders.drop(columns=["is_late"]).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def prepare(base: str, orders: int) -> dict[str, str]:
    """Upload the orders, start a plan, ask a question; the ids the pages need."""
    http = httpx.Client(base_url=base, timeout=600)
    started = time.perf_counter()
    job = http.post("/predict/batch", files={"file": ("orders.csv", recent_orders(orders), "text/csv")}).json()
    while (status := http.get(f"/batch/{job['batch_job_id']}/status").json())["status"] not in ("completed", "failed"):
        time.sleep(0.5)
    print(f"upload of {orders} orders: {status['status']} in {time.perf_counter() - started:.1f} s, deviations "
          f"{status['summary'].get('deviations')}", flush=True)  # fmt: skip
    waiting = -1
    while (now := http.get("/approvals", params={"limit": 1}).json()["total"]) != waiting:  # workflows settle
        waiting = now
        time.sleep(3)
    print(f"approvals pending: {waiting}", flush=True)
    store = next(s for s in http.get("/plans/stores").json()["stores"] if s["store_id"] == 3)
    plan = http.post("/plans", json={"store_id": 3, "horizon_days": 14, "items": [
        {"item_id": i["item_id"], "current_stock": 0} for i in store["items"][:12]],
        "constraints": {"lead_time_days": 3, "budget_limit": 200_000, "max_discount": 0.15}}).json()  # fmt: skip
    answer = http.post("/chat/stream", json={"message": "How many units did store 3 sell last week?"})
    order_id = http.get("/deviations", params={"severity": "critical", "limit": 1}).json()["items"][0]["order_id"]
    print(f"plan {plan.get('plan_id')} ({plan.get('status')}), chat {answer.status_code}, order {order_id}")
    return {"plan": str(plan["plan_id"]), "order": order_id}


def pages(ids: dict[str, str]) -> list[tuple[str, str, str]]:
    """(name, path, the text that shows once the page's content is there)."""
    return [
        ("chat", "/chat", "Conversations"),
        ("approvals", "/approvals", "Audit timeline"),
        ("deviations", "/deviations", "orders scored"),
        ("order", f"/orders/{ids['order']}", "Ledger ("),
        ("upload", "/upload", "Score a CSV of orders"),
        ("plans", "/plans", ids["plan"][:8]),
        ("plan", f"/plans/{ids['plan']}", "Timeline"),
        ("knowledge", "/knowledge", "Documents · policies"),
        ("models", "/models", "Order anomalies"),
    ]


def measure(base: str, ids: dict[str, str], repeat: int) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--window-size=1280,1800"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    results: dict[str, Any] = {}
    try:
        driver.get(f"{base}/ui/")  # auth off: the local admin is signed in at once
        time.sleep(2)
        for name, path, ready in pages(ids):
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                driver.get(f"{base}/ui{path}")
                deadline = time.monotonic() + 30
                while ready not in driver.find_element(By.TAG_NAME, "body").text:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{path}: {ready!r} not shown in 30 s")
                    time.sleep(0.01)
                times.append(time.perf_counter() - started)
            driver.save_screenshot(str(OUT / f"console-demo-{name}.png"))
            errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            results[name] = {"path": path, "median_s": statistics.median(times), "max_s": max(times),
                             "errors": errors}  # fmt: skip
            print(f"{name:11s} median {results[name]['median_s']:.3f} s  max {results[name]['max_s']:.3f} s"
                  f"{'  ERRORS ' + str(errors) if errors else ''}", flush=True)  # fmt: skip
    finally:
        driver.quit()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    with fresh_server("rimas-bench-console-") as (base, _pid, ready):
        print(f"server ready in {ready:.1f} s (first start: seed and train)", flush=True)
        ids = prepare(base, args.orders)
        results = measure(base, ids, args.repeat)
    slowest = max(r["max_s"] for r in results.values())
    print(f"target: every page under {TARGET_S:.0f} s; slowest median "
          f"{max(r['median_s'] for r in results.values()):.3f} s, slowest single load {slowest:.3f} s")
    (OUT / "bench_console.json").write_text(json.dumps({"orders": args.orders, "repeat": args.repeat,
                                                        "pages": results}, indent=2))  # fmt: skip
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
