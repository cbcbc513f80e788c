"""Benchmark: one deterministic ``deviation`` run, end to end in process, on the PostgreSQL saver.

Starts an embedded PostgreSQL (production settings), migrates a database, opens the knowledge base the way the
server does (Qdrant local mode, the packaged policy documents ingested) and compiles the deviation graph with the
service's ``PooledPostgresSaver``. Each run resolves a fresh warning deviation on a paid Road parcel still in
transit, which the policy lets the automation role handle alone (priority handling within the operator's limit, a
status e-mail): score -> assess -> supervisor -> shipment -> customer -> guardrails -> approval (nothing to ask)
-> execute (two ledger rows) -> record (resolution + case ingestion). Reports p50 / p95 / max per run after a
warm-up, and the mean time of each node (from the graph's ``updates`` stream).

Figures, not pass/fail. ``python bench/bench_deviation.py [--runs 100] [--warmup 10]``; JSON in
bench/out/bench_deviation.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
from _timing import percentile
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from graphs.deviation.graph import build_graph
from rag.embeddings import load_static_embedder
from rag.policy import get_policy
from rag.service import KnowledgeBase
from server.checkpointer import PooledPostgresSaver
from server.db import CONNECTION_KWARGS, connect
from server.embedded_pg import EmbeddedPostgres
from server.migrate import migrate
from server.qdrant import open_qdrant
from server.settings import Settings
from tools import deps as tool_deps
from tools.deps import ToolDeps

OUT = Path(__file__).resolve().parent / "out" / "bench_deviation.json"


def store_deviation(conn: psycopg.Connection[Any], number: int) -> str:
    """A warning deviation on a paid 2.5 kg Road parcel in transit, stored as the scoring pipeline stores it."""
    order_id, today = f"BENCH-{number}-{uuid.uuid4().hex[:6]}", dt.date.today()
    data = {
        "order_id": order_id, "customer_id": f"C{number:05d}", "warehouse_block": "D", "mode_of_shipment": "Road",
        "customer_care_calls": 2, "customer_rating": 4, "cost_of_product": 150, "prior_purchases": 3,
        "product_importance": "medium", "gender": "F", "discount_offered": 5, "weight_in_gms": 2500,
        "order_value": 140.0, "payment_status": "paid", "order_status": "shipped", "carrier_name": "Trailway",
        "order_date": (today - dt.timedelta(days=3)).isoformat(),
        "promised_delivery_date": (today + dt.timedelta(days=2)).isoformat(),
        "ship_date": (today - dt.timedelta(days=1)).isoformat(),
    }  # fmt: skip
    conn.execute("INSERT INTO order_inputs (order_id, customer_ref, data, source) VALUES (%s, %s, %s, 'api')",
                 (order_id, data["customer_id"], Jsonb(data)))  # fmt: skip
    conn.execute(
        "INSERT INTO predictions (order_id, source, delay_probability, severity, model_version, features) "
        "VALUES (%s, 'api', 0.62, 'warning', 'bench', '{}'::jsonb)",
        (order_id,),
    )
    deviation_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO deviations (deviation_id, order_id, severity, reasons, delay_probability) "
        "VALUES (%s, %s, 'warning', %s, 0.62)",
        (deviation_id, order_id, Jsonb(["delay probability 0.62 above the warning threshold 0.5"])),
    )
    return deviation_id


async def one_run(graph: Any, deviation_id: str) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Seconds for the run, seconds per node, and the final state's resolution."""
    nodes: dict[str, float] = defaultdict(float)
    config = {"configurable": {"thread_id": f"bench-{deviation_id}"}}
    started = last = time.perf_counter()
    async for update in graph.astream({"deviation_id": deviation_id}, config, stream_mode="updates"):
        now = time.perf_counter()
        for name in update:
            nodes[name] += now - last
        last = now
    state = await graph.aget_state(config)
    return time.perf_counter() - started, dict(nodes), state.values.get("resolution") or {}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="measured runs (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="runs before measuring (default 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rimas-bench-deviation-") as tmp:
        if os.geteuid() == 0:
            os.chmod(tmp, 0o711)
        cluster = EmbeddedPostgres(Path(tmp) / "pg")
        cluster.start()
        try:
            with connect(cluster.url) as conn:
                migrate(conn)
                ids = [store_deviation(conn, n) for n in range(args.runs + args.warmup)]
            settings = Settings(data_dir=Path(tmp) / "data")  # type: ignore[call-arg]
            qdrant = open_qdrant(settings)
            knowledge = KnowledgeBase(qdrant, load_static_embedder(), policy=get_policy())
            knowledge.ensure_collections()
            knowledge.ingest_policy_documents()
            async with AsyncConnectionPool(cluster.url, min_size=2, max_size=4, kwargs=CONNECTION_KWARGS) as pool:
                tool_deps.install(ToolDeps(pool=pool, knowledge=knowledge))
                graph = build_graph(checkpointer=PooledPostgresSaver(pool))
                for deviation_id in ids[: args.warmup]:
                    await one_run(graph, deviation_id)
                times, per_node, statuses = [], defaultdict(list), defaultdict(int)
                for deviation_id in ids[args.warmup :]:
                    seconds, nodes, resolution = await one_run(graph, deviation_id)
                    times.append(seconds)
                    statuses[resolution.get("status", "none")] += 1
                    for name, spent in nodes.items():
                        per_node[name].append(spent)
                tool_deps.install(None)
            qdrant.close()
        finally:
            cluster.stop()
    report = {
        "runs": len(times), "p50_ms": round(percentile(times, 0.5) * 1000, 1),
        "p95_ms": round(percentile(times, 0.95) * 1000, 1), "max_ms": round(max(times) * 1000, 1),
        "statuses": dict(statuses),
        "node_mean_ms": {k: round(statistics.fmean(v) * 1000, 2) for k, v in sorted(per_node.items(),
                                                                                    key=lambda kv: -sum(kv[1]))},
    }  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    print(f"deviation run without approval, {report['runs']} runs on the PostgreSQL saver: p50 {report['p50_ms']} ms, "
          f"p95 {report['p95_ms']} ms, max {report['max_ms']} ms; outcomes {report['statuses']}")  # fmt: skip
    print("mean per node (ms): " + ", ".join(f"{k} {v}" for k, v in report["node_mean_ms"].items()))


if __name__ == "__main__":
    asyncio.run(main())
