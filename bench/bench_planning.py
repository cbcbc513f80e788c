"""Benchmark: ``POST /plans`` for one store and 20 items, end to end over HTTP, deterministic mode (no LLM).

Starts one ``rimas serve`` (auth off, loopback) on a fresh data folder: on its first start it seeds the demo data
(10 stores x 50 products x 3 years of sales) and trains its models, which takes a few minutes and is reported apart.
Then ``--plans`` requests (after ``--warmup``), one after the other, each a store-1 plan for 20 items (a horizon of
14 days, a lead time of 3, the seed's budget and discount): the graph runs intake -> supervisor -> demand_analyst
-> inventory_planner | marketing_planner -> consolidate -> reflection -> approval, and the answer comes back when
the plan waits for approval. Reports p50 / p95 / max and the plan's status, lines and total cost. ``--against URL``
measures a server someone else started instead (auth off).

Figures, not pass/fail. ``python bench/bench_planning.py [--plans 20] [--warmup 3] [--against URL]``; JSON in
bench/out/bench_planning.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _serve import fresh_server
from _timing import percentile

OUT = Path(__file__).resolve().parent / "out" / "bench_planning.json"


def request(n_items: int) -> dict[str, Any]:
    return {"store_id": 1, "horizon_days": 14,
            "constraints": {"lead_time_days": 3, "budget_limit": 200000, "max_discount": 0.15},
            "items": [{"item_id": 1001 + i, "current_stock": (37 * i) % 120} for i in range(n_items)]}  # fmt: skip



def measure(url: str, plans: int, warmup: int, n_items: int) -> dict[str, Any]:
    body = request(n_items)
    times, last = [], {}
    with httpx.Client(base_url=url, timeout=120) as client:
        for index in range(warmup + plans):
            started = time.perf_counter()
            answer = client.post("/plans", json=body)
            elapsed = time.perf_counter() - started
            if answer.status_code != 201:
                raise SystemExit(f"POST /plans answered {answer.status_code}: {answer.text[:500]}")
            if index >= warmup:
                times.append(elapsed)
            last = answer.json()
    lines = last["recommendations"]
    return {"plans": plans, "items": n_items, "p50_s": round(percentile(times, 0.5), 3),
            "p95_s": round(percentile(times, 0.95), 3), "max_s": round(max(times), 3), "status": last["status"],
            "orders": sum(1 for r in lines if r["recommended_order_qty"] > 0),
            "promotions": sum(1 for r in lines if r["recommended_discount"] > 0),
            "total_cost": last["summary"]["total_cost"], "confidence": (last["reflection"] or {}).get("confidence"),
            "model_version": last["metadata"]["model_version"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plans", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--against", help="a running server's URL (auth off); default: start one")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    if args.against:
        figures = measure(args.against, args.plans, args.warmup, args.items)
    else:
        with fresh_server("bench-planning-") as (url, _, ready):
            figures = {"first_start_s": round(ready, 1), **measure(url, args.plans, args.warmup, args.items)}
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
