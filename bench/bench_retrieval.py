"""Benchmark of the knowledge base in Qdrant local mode (or a server with --qdrant-url).

Measures: policy ingestion cold (empty store) and warm (unchanged, a second start), search latency
p50/p95 per mode on the policy collection (the labelled questions, several rounds), filtered search,
the same on a cases collection of --cases synthetic resolutions, offline embedder throughput, and
collection sizes.

    .venv/bin/python bench/bench_retrieval.py [--rounds 5] [--cases 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient

from rag.embeddings import load_static_embedder
from rag.evaluation import load_eval_set
from rag.service import KnowledgeBase


def _client(url: str | None, path: Path) -> QdrantClient:
    return QdrantClient(url=url) if url else QdrantClient(path=str(path))


def _latency(fn: Callable[[str], Any], queries: list[str], rounds: int) -> dict[str, float]:
    for q in queries[:5]:  # warm caches (tokenizer, numpy)
        fn(q)
    samples = []
    for _ in range(rounds):
        for q in queries:
            started = time.perf_counter()
            fn(q)
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 2),
        "mean_ms": round(statistics.fmean(samples), 2),
    }


def _synthetic_case(i: int, rng: random.Random) -> dict[str, Any]:
    mode = rng.choice(["Ship", "Road", "Flight"])
    severity = rng.choice(["critical", "warning", "info"])
    action = {"Road": "upgraded to Flight", "Ship": "moved to Road", "Flight": "rescheduled on next departure"}[mode]
    return {
        "deviation_id": f"bench-{i:05d}",
        "order_id": str(10000 + i),
        "warehouse_block": rng.choice("ABCDF"),
        "mode_of_shipment": mode,
        "weight_in_gms": rng.randint(1000, 7800),
        "delay_probability": round(rng.uniform(0.3, 0.99), 2),
        "severity": severity,
        "summary": f"Shipment {action}; customer notified by email.",
        "actions": [{"agent_type": "shipment", "action": action}, {"agent_type": "customer", "action": "notify"}],
        "outcome": rng.choice(["resolved", "resolved", "escalated"]),
    }


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description="knowledge base benchmark")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over the labelled questions per mode")
    parser.add_argument("--cases", type=int, default=1000, help="synthetic cases for the cases collection")
    parser.add_argument("--qdrant-url", help="benchmark a Qdrant server instead of local mode")
    parser.add_argument("--json", help="write the results as JSON")
    args = parser.parse_args()

    embedder = load_static_embedder()
    questions = [q.question for q in load_eval_set().questions]
    results: dict[str, Any] = {"embedder": embedder.name, "target": args.qdrant_url or "local mode (path)"}
    with tempfile.TemporaryDirectory(prefix="rimas-bench-") as tmp:
        store_path = Path(tmp) / "qdrant"
        prefix = f"bench_{int(time.time())}_" if args.qdrant_url else ""

        started = time.perf_counter()
        client = _client(args.qdrant_url, store_path)
        kb = KnowledgeBase(client, embedder, prefix=prefix)
        cold = kb.ingest_policy_documents()
        results["ingest_cold"] = {"seconds_total": round(time.perf_counter() - started, 4), **cold.to_dict()}
        client.close()

        started = time.perf_counter()
        client = _client(args.qdrant_url, store_path)
        kb = KnowledgeBase(client, embedder, prefix=prefix)
        warm = kb.ingest_policy_documents()
        results["ingest_warm"] = {"seconds_total": round(time.perf_counter() - started, 4), **warm.to_dict()}

        search: dict[str, Any] = {}
        for mode in ("hybrid", "dense", "sparse"):
            search[mode] = _latency(lambda q, m=mode: kb.search(q, k=5, mode=m), questions, args.rounds)  # type: ignore[misc]
        search["hybrid_filtered"] = _latency(
            lambda q: kb.search(q, k=5, filters={"agent_type": "shipment"}), questions, args.rounds
        )
        search["embed_query_only"] = _latency(lambda q: kb.embed_query(q), questions, args.rounds)
        results["policies_search"] = search

        rng = random.Random(7)
        started = time.perf_counter()
        for i in range(args.cases):
            kb.add_case(_synthetic_case(i, rng))
        results["cases_ingest_seconds"] = round(time.perf_counter() - started, 3)
        case_queries = [
            f"{m} shipment warehouse {w} late delivery high delay probability"
            for m in ("road", "ship", "flight") for w in "ABCDF"
        ]
        results["cases_search"] = {
            "hybrid": _latency(lambda q: kb.search(q, k=5, collection="cases"), case_queries, args.rounds),
            "hybrid_filtered": _latency(
                lambda q: kb.search(q, k=5, collection="cases", filters={"warehouse": "B", "severity": "critical"}),
                case_queries, args.rounds,
            ),
        }
        results["collection_points"] = kb.collection_sizes()
        texts = [f"order {i} shipped late from warehouse block B by road, customer notified" for i in range(1000)]
        started = time.perf_counter()
        embedder.embed(texts)
        results["embed_1000_texts_seconds"] = round(time.perf_counter() - started, 3)
        if args.qdrant_url:
            for name in ("policies", "cases"):
                client.delete_collection(kb.store.physical(name))
        client.close()
        if not args.qdrant_url:
            results["local_store_bytes"] = _dir_size(store_path)
    model_dir = Path(__file__).resolve().parents[1] / "rag" / "static_model"
    results["static_model_bytes"] = _dir_size(model_dir)

    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
