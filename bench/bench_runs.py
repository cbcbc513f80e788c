"""Benchmark: concurrent SSE runs against a real ``rimas serve`` on PostgreSQL, and the checkpoint cost.

1. Starts an embedded PostgreSQL (production settings unless ``--fast``) and ``rimas serve`` serving the
   5-node test graph ``chain`` (tests/runtime/testgraphs/chain.py) on a free 127.0.0.1 port.
2. Fires ``--runs`` concurrent ``POST /threads/{id}/runs/stream`` requests (one thread each) and measures,
   per run, the time to the first SSE event (``metadata``), to the first graph event, and to ``end``; then
   runs/s over the batch and the errors (non-200 answers, ``error`` events, streams without ``end``).
3. In this process, times the same graph invoked sequentially with ``AsyncPostgresSaver`` on that database
   and with ``InMemorySaver``, and reports the checkpoint overhead per superstep (Postgres minus memory).

Figures, not pass/fail. ``python bench/bench_runs.py [--runs 100] [--rounds 2] [--fast]``; a JSON copy of
the figures goes to bench/out/bench_runs.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _timing import free_port, percentile
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg_pool import AsyncConnectionPool

from server.checkpointer import PooledPostgresSaver
from server.db import CONNECTION_KWARGS, connect
from server.embedded_pg import EmbeddedPostgres
from server.migrate import migrate
from server.runtime.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]
CHAIN = ROOT / "tests" / "runtime" / "testgraphs" / "chain.py"
RIMAS = Path(sys.executable).parent / "rimas"
OUT = ROOT / "bench" / "out" / "bench_runs.json"


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p95_ms": float("nan")}
    return {"p50_ms": round(percentile(values, 0.5) * 1000, 1), "p95_ms": round(percentile(values, 0.95) * 1000, 1)}


def start_server(workdir: Path, database_url: str, config: Path, pool_size: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIMAS_")}
    env.update(
        DATABASE_URL=database_url,
        RIMAS_PORT=str(port),
        RIMAS_DATA_DIR=str(workdir / "data"),
        RIMAS_SEED_ON_START="false",
        RIMAS_LANGGRAPH_CONFIG=str(config),
        RIMAS_LOG_LEVEL="WARNING",
        RIMAS_POOL_MAX_SIZE=str(pool_size),
    )
    log = open(workdir / "server.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([str(RIMAS), "serve"], cwd=workdir, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{(workdir / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start in 90 s")


async def one_run(client: httpx.AsyncClient, thread_id: str) -> dict[str, Any]:
    body = {"assistant_id": "chain", "input": {"count": 0}, "stream_mode": ["values", "updates"]}
    started = time.perf_counter()
    first = first_graph = None
    events: list[str] = []
    status = 0
    try:
        async with client.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
            status = response.status_code
            async for line in response.aiter_lines():
                if not line.startswith("event: "):
                    continue
                name = line[7:]
                now = time.perf_counter() - started
                first = first if first is not None else now
                if first_graph is None and name not in ("metadata", "end", "error"):
                    first_graph = now
                events.append(name)
    except httpx.HTTPError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    done = time.perf_counter() - started
    ok = status == 200 and events[-1:] == ["end"] and "error" not in events
    return {
        "ok": ok,
        "first": first,
        "first_graph": first_graph,
        "done": done,
        "events": len(events),
        "error": None if ok else f"status {status}, events {events[-3:]}",
    }


async def concurrent_round(url: str, runs: int, round_no: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=runs + 10, max_keepalive_connections=runs + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        ids = [f"bench-{round_no}-{i}" for i in range(runs)]
        await asyncio.gather(*(client.post("/threads", json={"thread_id": t}) for t in ids))
        started = time.perf_counter()
        results = await asyncio.gather(*(one_run(client, t) for t in ids))
        wall = time.perf_counter() - started
    good = [r for r in results if r["ok"]]
    return {
        "runs": runs,
        "errors": len(results) - len(good),
        "error_samples": [r["error"] for r in results if not r["ok"]][:3],
        "wall_s": round(wall, 3),
        "runs_per_s": round(runs / wall, 1),
        "first_event": _ms([r["first"] for r in good]),
        "first_graph_event": _ms([r["first_graph"] for r in good]),
        "completion": _ms([r["done"] for r in good]),
        "events_per_run": statistics.median([r["events"] for r in good]) if good else 0,
    }


async def saver_overhead(database_url: str, config: Path, invocations: int) -> dict[str, Any]:
    """Sequential invocations of the same graph with each saver; per superstep = per checkpoint written."""
    async with AsyncConnectionPool[Any](
        database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=2, open=False
    ) as pool:
        await pool.open(wait=True)
        figures: dict[str, Any] = {}
        steps = 1
        for name, saver, durability in (
            ("memory", InMemorySaver(), None),
            ("postgres", AsyncPostgresSaver(pool), None),
            ("postgres_exit", AsyncPostgresSaver(pool), "exit"),
        ):
            graph = load_registry(config, saver)["chain"].graph
            kwargs: dict[str, Any] = {"durability": durability} if durability else {}
            for warm in range(3):
                await graph.ainvoke({"count": 0}, {"configurable": {"thread_id": f"warm-{name}-{warm}"}}, **kwargs)
            started = time.perf_counter()
            for i in range(invocations):
                await graph.ainvoke({"count": 0}, {"configurable": {"thread_id": f"{name}-{i}"}}, **kwargs)
            per_run = (time.perf_counter() - started) / invocations
            if name == "memory":  # supersteps executed (the same whatever the saver or durability)
                steps = len([s async for s in graph.aget_state_history({"configurable": {"thread_id": "memory-0"}})])
            figures[name] = {
                "per_run_ms": round(per_run * 1000, 2),
                "supersteps": steps,
                "per_superstep_ms": round(per_run * 1000 / steps, 3),
            }
        memory = figures["memory"]["per_superstep_ms"]
        figures["overhead_per_superstep_ms"] = round(figures["postgres"]["per_superstep_ms"] - memory, 3)
        figures["overhead_per_superstep_exit_ms"] = round(figures["postgres_exit"]["per_superstep_ms"] - memory, 3)
        return figures


async def saver_concurrency(database_url: str, config: Path, runs: int) -> dict[str, Any]:
    """``runs`` concurrent in-process invocations (no HTTP) with the stock saver, whose instance lock
    serialises every checkpoint operation, and with the service's ``PooledPostgresSaver`` (no lock: each
    operation checks a connection out of the pool on its own): how much the lock caps throughput."""
    figures: dict[str, Any] = {}
    for name in ("stock_saver", "pooled_saver"):
        async with AsyncConnectionPool[Any](
            database_url, kwargs=CONNECTION_KWARGS, min_size=10, max_size=10, open=False
        ) as pool:
            await pool.open(wait=True)
            saver = PooledPostgresSaver(pool) if name == "pooled_saver" else AsyncPostgresSaver(pool)
            graph = load_registry(config, saver)["chain"].graph
            started = time.perf_counter()
            await asyncio.gather(
                *(graph.ainvoke({"count": 0}, {"configurable": {"thread_id": f"{name}-{i}"}}) for i in range(runs))
            )
            wall = time.perf_counter() - started
            figures[name] = {"wall_s": round(wall, 3), "runs_per_s": round(runs / wall, 1)}
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="concurrent SSE runs per round (default 100)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the first warms up (default 2)")
    parser.add_argument("--invocations", type=int, default=50, help="sequential runs per saver (default 50)")
    parser.add_argument("--pool", type=int, default=10, help="server database pool size (default 10)")
    parser.add_argument("--fast", action="store_true", help="PostgreSQL with fsync/synchronous_commit off")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rimas-bench-") as tmp:
        workdir = Path(tmp)
        if os.geteuid() == 0:  # postgres then runs as another user, which must be able to search this folder
            os.chmod(tmp, 0o711)
        config = workdir / "langgraph.json"
        config.write_text(json.dumps({"graphs": {"chain": f"{CHAIN}:graph"}}))
        cluster = EmbeddedPostgres(workdir / "pg", fast=args.fast)
        database_url = cluster.start()
        proc = None
        try:
            with connect(database_url) as conn:
                migrate(conn)
            proc, url = start_server(workdir, database_url, config, args.pool)
            rounds = [await concurrent_round(url, args.runs, n) for n in range(args.rounds)]
            proc.terminate()
            proc.wait(timeout=30)
            proc = None
            savers = await saver_overhead(database_url, config, args.invocations)
            saver_lock = await saver_concurrency(database_url, config, args.runs)
        finally:
            if proc is not None:
                proc.kill()
                proc.wait(timeout=30)
            cluster.stop()

    report: dict[str, Any] = {
        "postgres": "fast (fsync off)" if args.fast else "default durability settings",
        "cpu_count": os.cpu_count(),
        "concurrent": rounds[-1],
        "warmup_round": rounds[0] if len(rounds) > 1 else None,
        "savers": savers,
        "saver_lock": saver_lock,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    c: dict[str, Any] = report["concurrent"]
    print(f"{c['runs']} concurrent SSE runs of the 5-node chain graph ({report['postgres']}, {os.cpu_count()} CPUs)")
    print(f"  first event (metadata)  p50 {c['first_event']['p50_ms']:>8} ms   p95 {c['first_event']['p95_ms']:>8} ms")
    print(
        f"  first graph event       p50 {c['first_graph_event']['p50_ms']:>8} ms   p95 "
        f"{c['first_graph_event']['p95_ms']:>8} ms"
    )
    print(f"  completion (end)        p50 {c['completion']['p50_ms']:>8} ms   p95 {c['completion']['p95_ms']:>8} ms")
    print(f"  throughput              {c['runs_per_s']} runs/s over {c['wall_s']} s;  errors {c['errors']}")
    s: dict[str, Any] = report["savers"]
    print(f"checkpoint cost, {args.invocations} sequential runs each ({s['postgres']['supersteps']} checkpoints a run)")
    for name in ("memory", "postgres", "postgres_exit"):
        print(f"  {name:<14} {s[name]['per_run_ms']:>8} ms/run   {s[name]['per_superstep_ms']:>7} ms/superstep")
    print(
        f"  Postgres overhead per superstep: {s['overhead_per_superstep_ms']} ms "
        f"(durability='exit': {s['overhead_per_superstep_exit_ms']} ms)"
    )
    lock: dict[str, Any] = report["saver_lock"]
    print(f"{c['runs']} concurrent in-process runs (no HTTP), pool of 10 connections")
    for name in ("stock_saver", "pooled_saver"):
        print(f"  {name:<20} {lock[name]['runs_per_s']:>7} runs/s ({lock[name]['wall_s']} s)")
    if c["errors"]:
        print(f"  error samples: {c['error_samples']}")


if __name__ == "__main__":
    asyncio.run(main())
