"""Benchmark: concurrent SSE runs through the PostgreSQL run queue, in three process topologies, a kill check,
and the checkpoint cost.

1. Starts an embedded PostgreSQL (production settings unless ``--fast``). Each topology gets a database of its
   own (CREATE DATABASE on that cluster, migrated), so rows do not pile up from one to the next:

   * ``one``: one ``rimas serve`` (``RIMAS_WORKERS`` 16, the default);
   * ``two``: two ``rimas serve`` on the same database, requests spread round-robin over both;
   * ``split``: one ``rimas serve`` with ``RIMAS_WORKERS=0`` plus one ``rimas worker``: every run is executed
     in the other process and its events come back through ``run_events`` and LISTEN/NOTIFY.

   Every process serves the 5-node test graph ``chain`` (tests/runtime/testgraphs/chain.py) and has its own
   ``RIMAS_DATA_DIR`` (the Qdrant local-mode lock). After a warm-up round (``--warmup`` concurrent runs: a process's
   first burst is slower, about 200 ms more to ``metadata`` at 100 streams, while its allocator, pool and prepared
   statements warm up), ``--sequential`` runs one after the other give the latency of a run alone, then one round per
   ``--runs`` count fires that many concurrent ``POST /threads/{id}/runs/stream`` (one thread each, round-robin over
   the servers). The streams are read by a lean HTTP/1.1 client (``_sse_client.py``): httpx spent more CPU per stream
   than the server did, on the same two cores. Per run: the time to the ``metadata`` event, to the first graph event
   and to ``end``; per round: runs/s (completed runs over the batch's wall time), the errors (non-200 answers,
   ``error`` events, streams without ``end``), the runs executed twice (``runs.attempt > 1``: should be 0) and the
   runs whose ``end`` came more than 0.9 s after their last graph event (a follower in another process woken by its
   1 s fallback, or queueing under load).
2. Kill check (``--kill``, on by default): two ``rimas serve`` with ``RIMAS_RUN_LEASE_SECONDS=2`` take a batch of
   background runs (``POST /threads/{id}/runs``, round-robin; each run waits ``--kill-delay`` s in its first
   node so some are executing). Once a third of them are queued, one server is SIGKILLed and nothing is
   restarted; requests still meant for it go to the survivor (a client failing over). The database is polled
   until every run is ``success``: how long that took after the kill, how many runs were executed a second
   time (attempt 2), and how many are lost (not ``success`` after ``--kill-timeout`` s).
3. In this process, times the same graph invoked sequentially with ``AsyncPostgresSaver`` and with
   ``InMemorySaver`` and reports the checkpoint overhead per superstep, then concurrent in-process runs with the
   stock saver (an instance lock) and the service's ``PooledPostgresSaver``.
4. Profile (``--profile N``, 200 by default, 0 turns it off; skipped when the venv has no ``py-spy``): one more
   ``rimas serve`` executes stream runs, ``--profile-batch`` at a time (1: one after the other): 100 unsampled, with
   the CPU time the server, the PostgreSQL processes and this client spent per run (read from /proc), then N under
   ``py-spy record --gil`` (samples of the thread holding the GIL: Python CPU time). Prints the CPU per run, the
   share of the server's samples by part of a run's path, the functions with the most samples on the stack
   (cumulative, event-loop plumbing left out, wrappers folded) and at the top (self). The collapsed stacks stay in
   bench/out/.

Figures, not pass/fail. ``python bench/bench_runs.py [--runs 100,500] [--topologies one,two,split] [--no-kill]
[--fast] [--profile 0] [--profile-batch 100]``; a JSON copy of the figures goes to bench/out/bench_runs.json.
``--against URL`` runs only the rounds against a server someone else started (any version serving ``chain``
with auth off): the way to compare two versions back to back on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _sse_client import StreamError, stream_events
from _timing import free_port, summary_ms
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from server.checkpointer import PooledPostgresSaver
from server.db import CONNECTION_KWARGS, connect
from server.embedded_pg import EmbeddedPostgres
from server.migrate import migrate
from server.runtime.bus import OWNER_CLASS
from server.runtime.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]
CHAIN = ROOT / "tests" / "runtime" / "testgraphs" / "chain.py"
BIN = Path(sys.executable).parent
RIMAS = BIN / "rimas"
PY_SPY = BIN / "py-spy"
OUT = ROOT / "bench" / "out" / "bench_runs.json"
PROFILE_OUT = ROOT / "bench" / "out" / "bench_runs_profile.txt"
TOPOLOGIES = {
    "one": "one rimas serve (16 workers)",
    "two": "two rimas serve, one database, round-robin",
    "split": "rimas serve (0 workers) + rimas worker (16)",
}
STREAM_BODY = {"assistant_id": "chain", "input": {"count": 0}, "stream_mode": ["values", "updates"]}
# frames on the stack of every sample (the event loop and process start-up): left out of the cumulative list
PLUMBING = ("<module> (", "asyncio/", "selectors.py", "uvicorn/main.py", "uvicorn/server.py", "uvicorn/_compat.py",
            "server/cli.py", "runpy.py", "threading.py", "contextvars")  # fmt: skip


# -- processes ------------------------------------------------------------------------------------------------


@dataclass
class Proc:
    """A ``rimas serve`` (``url`` set) or ``rimas worker`` child process."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None

    def stop(self) -> None:
        """SIGTERM (it drains), then SIGKILL if it is still there after 30 s."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=30)


def spawn(kind: str, name: str, workdir: Path, database_url: str, config: Path, pool_size: int,
          extra: dict[str, str] | None = None) -> Proc:  # fmt: skip
    """Start ``rimas serve`` or ``rimas worker`` with its own data dir under ``workdir/name``."""
    folder = workdir / name
    folder.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIMAS_")}
    env.update(
        DATABASE_URL=database_url,
        RIMAS_DATA_DIR=str(folder / "data"),
        RIMAS_SEED_ON_START="false",
        RIMAS_LANGGRAPH_CONFIG=str(config),
        RIMAS_LOG_LEVEL="WARNING",
        RIMAS_POOL_MAX_SIZE=str(pool_size),
        **(extra or {}),
    )
    url = None
    if kind == "serve":
        port = free_port()
        env["RIMAS_PORT"] = str(port)
        url = f"http://127.0.0.1:{port}"
    log = folder / f"{kind}.log"
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        popen = subprocess.Popen([str(RIMAS), kind], cwd=folder, env=env, stdout=out, stderr=out)
    return Proc(name, popen, log, url)


OWNER_LOCKS = (
    "SELECT objid::bigint AS key FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid AND objsubid = 2 "
    "AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def owner_keys(conn: psycopg.Connection[Any]) -> set[int]:
    """Owner locks held in this database: one per live RIMAS process whose run manager is up."""
    return {int(r["key"]) for r in conn.execute(OWNER_LOCKS, (OWNER_CLASS,)).fetchall()}


async def owner_keys_async(conn: psycopg.AsyncConnection[Any]) -> set[int]:
    cur = await conn.execute(OWNER_LOCKS, (OWNER_CLASS,))
    return {int(r["key"]) for r in await cur.fetchall()}


def wait_ready(procs: list[Proc], database_url: str, timeout: float = 90) -> None:
    """Until every server answers ``/ok`` and every process holds its owner lock (workers have no HTTP)."""
    deadline = time.monotonic() + timeout
    pending = [p for p in procs if p.url is not None]
    with connect(database_url) as conn:
        while time.monotonic() < deadline:
            for proc in procs:
                if proc.popen.poll() is not None:
                    raise SystemExit(f"{proc.name} exited:\n{proc.log.read_text()[-2000:]}")
            for proc in list(pending):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{proc.url}/ok", timeout=1).status_code == 200:
                        pending.remove(proc)
            if not pending and len(owner_keys(conn)) >= len(procs):
                return
            time.sleep(0.1)
    for proc in procs:
        proc.popen.kill()
    raise SystemExit(f"{', '.join(p.name for p in procs)} not ready in {timeout:g} s")


def fresh_database(cluster: EmbeddedPostgres, name: str) -> str:
    """A new, migrated database ``name`` on the embedded cluster; returns its URL."""
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = cluster.url_for(name)
    with connect(url) as conn:
        migrate(conn)
    return url


def start_topology(topology: str, workdir: Path, database_url: str, config: Path, pool: int) -> list[Proc]:
    """The processes of a topology, ready; the ones with a URL take requests."""

    def serve(name: str, extra: dict[str, str] | None = None) -> Proc:
        return spawn("serve", f"{topology}-{name}", workdir, database_url, config, pool, extra)

    if topology == "one":
        procs = [serve("a")]
    elif topology == "two":
        procs = [serve("a"), serve("b")]
    else:
        procs = [serve("a", {"RIMAS_WORKERS": "0"}),
                 spawn("worker", f"{topology}-w", workdir, database_url, config, pool)]  # fmt: skip
    ready_or_stopped(procs, database_url)
    return procs


def ready_or_stopped(procs: list[Proc], database_url: str) -> None:
    """Wait until every process is ready; stop them all if one is not."""
    try:
        wait_ready(procs, database_url)
    except BaseException:
        for proc in procs:
            proc.stop()
        raise


def clients_for(procs: list[Proc], connections: int) -> list[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return [httpx.AsyncClient(base_url=p.url, limits=limits, timeout=120) for p in procs if p.url is not None]


# -- concurrent rounds ----------------------------------------------------------------------------------------


async def one_run(client: httpx.AsyncClient, thread_id: str) -> dict[str, Any]:
    """One stream run through the lean client (the httpx client gives only its base URL)."""
    first = first_graph = last_graph = None
    events: list[str] = []

    def seen(name: str, now: float) -> None:
        nonlocal first, first_graph, last_graph
        first = first if first is not None else now
        if name not in ("metadata", "end", "error"):
            first_graph = first_graph if first_graph is not None else now
            last_graph = now
        events.append(name)

    started = time.perf_counter()
    try:
        status = await stream_events(str(client.base_url), f"/threads/{thread_id}/runs/stream", STREAM_BODY, seen)
    except StreamError as exc:
        return {"ok": False, "error": str(exc)}
    done = time.perf_counter() - started
    ok = status == 200 and events[-1:] == ["end"] and "error" not in events and events[:1] == ["metadata"]
    return {
        "ok": ok,
        "first": first,
        "first_graph": first_graph,
        "last_graph": last_graph if last_graph is not None else done,
        "done": done,
        "events": len(events),
        "error": None if ok else f"status {status}, events {events[-3:]}",
    }


async def create_threads(clients: list[httpx.AsyncClient], ids: list[str]) -> int:
    """Create the threads (round-robin over the servers); returns how many failed."""
    answers = await asyncio.gather(
        *(clients[i % len(clients)].post("/threads", json={"thread_id": t}) for i, t in enumerate(ids)),
        return_exceptions=True,
    )
    return sum(1 for a in answers if not isinstance(a, httpx.Response) or a.status_code != 200)


async def measure_round(
    clients: list[httpx.AsyncClient], database_url: str | None, runs: int, label: str, *, concurrent: bool = True
) -> dict[str, Any]:
    """``runs`` stream runs, all at once or one after the other, round-robin over the servers."""
    ids = [f"{label}-{i}" for i in range(runs)]
    await create_threads(clients, ids)
    started = time.perf_counter()
    if concurrent:
        results = await asyncio.gather(*(one_run(clients[i % len(clients)], t) for i, t in enumerate(ids)))
    else:
        results = [await one_run(clients[i % len(clients)], t) for i, t in enumerate(ids)]
    wall = time.perf_counter() - started
    row: dict[str, Any] = {"twice": -1, "not_success": -1, "rows": -1}  # -1: not known (--against)
    if database_url is not None:
        async with await psycopg.AsyncConnection.connect(database_url, **CONNECTION_KWARGS) as conn:
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE attempt > 1) AS twice, count(*) FILTER (WHERE status <> 'success') "
                "AS not_success, count(*) AS rows FROM runs WHERE thread_id LIKE %s",
                (f"{label}-%",),
            )
            row = await cur.fetchone() or row
    good = [r for r in results if r["ok"]]
    return {
        "runs": runs,
        "mode": "concurrent" if concurrent else "sequential",
        "completed": len(good),
        "errors": len(results) - len(good),
        "error_samples": [r["error"] for r in results if not r["ok"]][:3],
        "wall_s": round(wall, 3),
        "runs_per_s": round(len(good) / wall, 1),
        "first_event": summary_ms([r["first"] for r in good]),
        "first_graph_event": summary_ms([r["first_graph"] for r in good]),
        "completion": summary_ms([r["done"] for r in good]),
        "completion_max_ms": round(max((r["done"] for r in good), default=float("nan")) * 1000, 1),
        "end_after_last_graph_event_over_900ms": sum(1 for r in good if r["done"] - r["last_graph"] > 0.9),
        "events_per_run": statistics.median([r["events"] for r in good]) if good else 0,
        "executed_twice": int(row["twice"]),
        "run_rows": int(row["rows"]),
        "rows_not_success": int(row["not_success"]),
    }


async def topology_rounds(
    topology: str, cluster: EmbeddedPostgres, workdir: Path, config: Path, args: argparse.Namespace
) -> dict[str, Any]:
    database_url = fresh_database(cluster, f"bench_{topology}")
    started = time.perf_counter()
    procs = start_topology(topology, workdir, database_url, config, args.pool)
    ready_s = time.perf_counter() - started
    clients = clients_for(procs, max([*args.runs, args.warmup]) + 10)
    try:
        rounds = await run_rounds(clients, database_url, topology, args)
    finally:
        for client in clients:
            await client.aclose()
        for proc in procs:
            proc.stop()
    return {"topology": TOPOLOGIES[topology], "processes": len(procs), "ready_s": round(ready_s, 2), **rounds}


async def run_rounds(
    clients: list[httpx.AsyncClient], database_url: str | None, label: str, args: argparse.Namespace
) -> dict[str, Any]:
    """The warm-up, the sequential round and one concurrent round per ``--runs`` count."""
    warmup = await measure_round(clients, database_url, args.warmup, f"{label}-warm") if args.warmup else None
    rounds = []
    if args.sequential:
        rounds.append(
            await measure_round(clients, database_url, args.sequential, f"{label}-seq", concurrent=False)
        )
    for i, n in enumerate(args.runs):
        rounds.append(await measure_round(clients, database_url, n, f"{label}-r{i}-{n}"))
    return {"warmup": warmup, "rounds": rounds}


# -- kill check -----------------------------------------------------------------------------------------------


async def status_counts(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    cur = await conn.execute("SELECT status, count(*) AS n FROM runs GROUP BY status")
    return {r["status"]: int(r["n"]) for r in await cur.fetchall()}


async def kill_check(
    cluster: EmbeddedPostgres, workdir: Path, config: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Two servers share a batch of background runs; one is SIGKILLed a third of the way in; the survivor
    must bring every run to ``success`` (see the module docstring). Timeline, from the kill: the victim's
    owner lock is free; none of its runs is still ``running`` (the survivor's sweeper queued them again);
    every re-executed run is ``success``; every run is."""
    database_url = fresh_database(cluster, "bench_kill")
    lease = {"RIMAS_RUN_LEASE_SECONDS": "2"}
    procs = [spawn("serve", f"kill-{n}", workdir, database_url, config, args.pool, lease) for n in ("a", "b")]
    ready_or_stopped(procs, database_url)
    victim = procs[1]
    n = args.kill_runs
    clients = clients_for(procs, 64)
    body = {"assistant_id": "chain", "input": {"count": 0, "delay": args.kill_delay}}
    killed = False
    tally = Counter[str]()
    gate = asyncio.Semaphore(args.kill_inflight)

    async def submit(i: int) -> None:
        async with gate:
            target = 0 if killed else i % 2
            tally["redirected"] += target != i % 2
            for server in (target, 0) if target == 1 else (0,):
                try:
                    answer = await clients[server].post(f"/threads/kill-{i}/runs", json=body)
                    if answer.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                tally["retried"] += server == 1
            tally["failed"] += 1

    conn = await psycopg.AsyncConnection.connect(database_url, **CONNECTION_KWARGS)
    marks: dict[str, float] = {}
    try:
        keys_before = await owner_keys_async(conn)
        await create_threads(clients, [f"kill-{i}" for i in range(n)])
        started = time.perf_counter()
        submitting = asyncio.gather(*(submit(i) for i in range(n)))
        while True:  # a third of the batch queued
            cur = await conn.execute("SELECT count(*) AS n FROM runs")
            row = await cur.fetchone()
            if (row is not None and row["n"] >= n // 3) or submitting.done():
                break
            await asyncio.sleep(0.005)
        victim.popen.send_signal(signal.SIGKILL)
        killed_at, killed = time.perf_counter(), True
        cur = await conn.execute("SELECT owner_key, status, count(*) AS n FROM runs GROUP BY 1, 2 ORDER BY 1, 2")
        at_kill = [dict(r) for r in await cur.fetchall()]
        for _ in range(6000):  # PostgreSQL frees the lock when it sees the connection drop
            keys = await owner_keys_async(conn)
            if keys != keys_before:
                break
            await asyncio.sleep(0.005)
        marks["owner_lock_free"] = time.perf_counter()
        victim_keys = keys_before - keys
        deadline = killed_at + args.kill_timeout
        while time.perf_counter() < deadline:
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'running' AND owner_key = ANY(%s)) AS orphaned, "
                "count(*) FILTER (WHERE attempt > 1) AS again, "
                "count(*) FILTER (WHERE attempt > 1 AND status = 'success') AS again_done, "
                "count(*) FILTER (WHERE status <> 'success') AS open FROM runs",
                (list(victim_keys),),
            )
            now, row = time.perf_counter(), await cur.fetchone()
            assert row is not None
            if row["orphaned"] == 0:
                marks.setdefault("orphans_requeued", now)
                if row["again"] and row["again"] == row["again_done"]:
                    marks.setdefault("orphans_success", now)
            if row["open"] == 0 and submitting.done():
                marks["all_success"] = now
                break
            await asyncio.sleep(0.02)
        await submitting
        counts = await status_counts(conn)
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE attempt > 1) AS twice, count(*) FILTER (WHERE status <> 'success') AS lost, "
            "count(*) AS rows, count(DISTINCT thread_id) FILTER (WHERE status = 'success') AS threads_done, "
            "max(attempt) AS max_attempt FROM runs"
        )
        totals = await cur.fetchone()
        assert totals is not None
    finally:
        await conn.close()
        for client in clients:
            await client.aclose()
        for proc in procs:
            proc.stop()
    on_victim = sum(int(r["n"]) for r in at_kill if r["owner_key"] in victim_keys and r["status"] == "running")
    return {
        "runs": n,
        "delay_s": args.kill_delay,
        "inflight_requests": args.kill_inflight,
        "lease_s": 2,
        "rows_at_kill": sum(int(r["n"]) for r in at_kill),
        "running_on_victim_at_kill": on_victim,
        "at_kill": [{**r, "owner": _owner(r["owner_key"], victim_keys)} for r in at_kill],
        "kill_after_s": round(killed_at - started, 3),
        "after_kill_s": {k: round(v - killed_at, 3) for k, v in marks.items()},
        "requests_redirected_to_survivor": tally["redirected"],
        "requests_retried_on_survivor": tally["retried"],
        "requests_failed": tally["failed"],
        "all_success": set(counts) <= {"success"},
        "batch_s": round(marks.get("all_success", time.perf_counter()) - started, 3),
        "run_rows": int(totals["rows"]),
        "threads_with_success": int(totals["threads_done"]),
        "attempt_2_or_more": int(totals["twice"]),
        "max_attempt": int(totals["max_attempt"] or 0),
        "lost": int(totals["lost"]) + (n - int(totals["threads_done"])),
        "final_status": counts,
    }


def _owner(key: int | None, victim_keys: set[int]) -> str | None:
    return None if key is None else "victim" if key in victim_keys else "survivor"


# -- profile --------------------------------------------------------------------------------------------------


def _frame_key(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (to/file.py)``: one entry per function whatever the line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(path).parts[-2:])})"


Stacks = list[tuple[frozenset[str], str, int]]  # (functions on the stack, function on top, samples)


def read_collapsed(path: Path) -> Stacks:
    """The stacks of a py-spy ``raw`` (collapsed stacks) file, one function per frame whatever the line."""
    stacks: Stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_frame_key(f) for f in stack.split(";") if " (" in f]
        if frames and count.isdigit():
            stacks.append((frozenset(frames), frames[-1], int(count)))
    return stacks


def top_cumulative(stacks: Stacks, total: int, limit: int = 10, fold: float = 0.05) -> list[dict[str, Any]]:
    """The functions on the stack of the most samples, event-loop plumbing left out. A function always found
    under (or over) a listed one with at most ``fold`` of the samples more or less is folded into it, so a
    chain of middleware or a wrapper and what it wraps take one line (``folded`` counts them)."""
    where: dict[str, set[int]] = {}
    for i, (frames, _, _) in enumerate(stacks):
        for key in frames:
            if not any(p in key for p in PLUMBING):
                where.setdefault(key, set()).add(i)
    weight = {k: sum(stacks[i][2] for i in idx) for k, idx in where.items()}
    kept: list[dict[str, Any]] = []
    for key in sorted(weight, key=lambda k: -weight[k]):
        host = next((e for e in kept if where[key] <= where[e["function"]]
                     and weight[e["function"]] - weight[key] <= fold * total), None)  # fmt: skip
        if host is not None:
            host["folded"] += 1
        elif len(kept) < limit:
            kept.append({"function": key, "folded": 0})
    return [{**e, "pct": round(100 * weight[e["function"]] / total, 1)} for e in kept]


# Where the server's CPU goes, by a function that must be on the stack (a substring of its key); the parts
# overlap (the graph's checkpoint writes run in tasks of their own, outside RunManager._execute's stack).
BREAKDOWN = (
    ("HTTP requests: middleware chain to the route handler", ("RequestResponseCycle.run_asgi",)),
    ("RunManager.start: checks, enqueue, claim", ("RunManager.start (",)),
    ("sync FastAPI dependencies (threadpool hop)", ("run_in_threadpool (",)),
    ("SSE sending (sse_starlette tasks)", ("sse_starlette/sse.py",)),
    ("the run's task (RunManager._execute)", ("RunManager._execute (",)),
    ("LangGraph code anywhere (pregel/)", ("(pregel/",)),
    ("checkpoint writes (saver aput / aput_writes)", ("AsyncPostgresSaver.aput", "PooledPostgresSaver.aput")),
    ("recording the run's end (RunManager._finish)", ("RunManager._finish (",)),
    ("run-queue SQL (runtime/queue.py)", ("(runtime/queue.py)",)),
    ("psycopg anywhere", ("(psycopg/", "(psycopg_pool/")),
    ("dispatcher, lease renewer, sweeper, bus", ("_dispatch_forever", "_renew_forever", "_sweep_forever",
                                                 "Bus._listen")),
    ("event loop only (no other frame)", ()),
)  # fmt: skip


def breakdown(stacks: Stacks, total: int) -> list[dict[str, Any]]:
    rows = []
    for label, needles in BREAKDOWN:
        if needles:
            hits = sum(n for frames, _, n in stacks if any(x in f for f in frames for x in needles))
        else:
            hits = sum(n for frames, _, n in stacks if all(any(p in f for p in PLUMBING) for f in frames))
        rows.append({"part": label, "pct": round(100 * hits / total, 1) if total else float("nan")})
    return rows


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (their own, not their children's)."""
    tick = os.sysconf("SC_CLK_TCK")
    spent = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            spent += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return spent / tick


def postgres_pids(cluster: EmbeddedPostgres) -> list[int]:
    """The postmaster and its children (backends, WAL writer, checkpointer...)."""
    postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


def start_py_spy(pid: int, rate: int) -> subprocess.Popen[bytes]:
    """``py-spy record`` of ``pid`` into :data:`PROFILE_OUT` (collapsed stacks, by function) until SIGINT; only
    samples of the thread holding the GIL, so the figures are Python CPU time, waiting left out."""
    PROFILE_OUT.unlink(missing_ok=True)
    with open(PROFILE_OUT.with_suffix(".log"), "wb") as spy_log:
        return subprocess.Popen(
            [str(PY_SPY), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--function",
             "--gil", "--output", str(PROFILE_OUT)],
            stdout=spy_log, stderr=spy_log,
        )  # fmt: skip


async def _runs_in_batches(clients: list[httpx.AsyncClient], ids: list[str], batch: int) -> list[dict[str, Any]]:
    """Stream runs on ``ids``, ``batch`` at a time (1: one after the other)."""
    results: list[dict[str, Any]] = []
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        results += await asyncio.gather(*(one_run(clients[i % len(clients)], tid) for i, tid in enumerate(chunk)))
    return results


async def profile(cluster: EmbeddedPostgres, workdir: Path, config: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``args.profile`` stream runs, ``args.profile_batch`` at a time, against one server sampled by py-spy."""
    if not PY_SPY.exists():
        return {"skipped": f"{PY_SPY} not installed (pip install py-spy)"}
    database_url = fresh_database(cluster, "bench_profile")
    procs = start_topology("one", workdir, database_url, config, args.pool)
    clients = clients_for(procs, max(8, args.profile_batch))
    n, baseline_runs = args.profile, 100
    try:
        await create_threads(clients, [f"prof-{i}" for i in range(n + 20 + baseline_runs)])
        for i in range(20):  # warm-up
            await one_run(clients[0], f"prof-{n + i}")
        server, postgres = [procs[0].popen.pid], postgres_pids(cluster)
        cpu_before = (cpu_seconds(server), cpu_seconds(postgres), time.process_time())
        started = time.perf_counter()  # the same runs unsampled: CPU per run of each party, and py-spy's cost
        await _runs_in_batches(clients, [f"prof-{n + 20 + i}" for i in range(baseline_runs)], args.profile_batch)
        baseline = time.perf_counter() - started
        cpu_after = (cpu_seconds(server), cpu_seconds(postgres), time.process_time())
        cpu_ms = {
            name: round((after - before) * 1000 / baseline_runs, 2)
            for name, before, after in zip(("server", "postgres", "client"), cpu_before, cpu_after, strict=True)
        }
        PROFILE_OUT.parent.mkdir(parents=True, exist_ok=True)
        rate = 1000
        spy = start_py_spy(procs[0].popen.pid, rate)
        log = PROFILE_OUT.with_suffix(".log")
        for _ in range(200):  # until py-spy has attached
            if "Sampling process" in log.read_text(errors="replace") or spy.poll() is not None:
                break
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        results = await _runs_in_batches(clients, [f"prof-{i}" for i in range(n)], args.profile_batch)
        elapsed = time.perf_counter() - started
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    finally:
        for client in clients:
            await client.aclose()
        for proc in procs:
            proc.stop()
    if not PROFILE_OUT.exists():
        return {"skipped": f"py-spy wrote nothing: {PROFILE_OUT.with_suffix('.log').read_text()[-500:]}"}
    stacks = read_collapsed(PROFILE_OUT)
    total = sum(n for _, _, n in stacks)
    own = Counter[str]()
    for _, top, count in stacks:
        own[top] += count
    return {
        "runs": n,
        "batch": args.profile_batch,
        "errors": sum(1 for r in results if not r["ok"]),
        "ms_per_run": round(elapsed * 1000 / n, 2),
        "ms_per_run_unsampled": round(baseline * 1000 / baseline_runs, 2),
        "samples": total,
        "rate_hz": rate,
        "gil_share_of_wall": round(total / rate / elapsed, 3),
        "cpu_ms_per_run_unsampled": cpu_ms,
        "gil_ms_per_run_sampled": round(total / rate * 1000 / n, 2),
        "breakdown": breakdown(stacks, total),
        "top_cumulative": top_cumulative(stacks, total),
        "top_self": [{"function": k, "pct": round(100 * v / total, 1)} for k, v in own.most_common(10)],
        "raw": str(PROFILE_OUT.relative_to(ROOT)),
    }


# -- savers (in process) --------------------------------------------------------------------------------------


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
    figures: dict[str, Any] = {"runs": runs}
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


# -- report ---------------------------------------------------------------------------------------------------


def _pace(batch: int) -> str:
    return "one at a time" if batch == 1 else f"{batch} at a time"


def _pair(figure: dict[str, float]) -> str:
    return f"{figure['p50_ms']:>7.1f} /{figure['p95_ms']:>7.1f}"


def print_rounds(report: dict[str, Any]) -> None:
    """The table of rounds, one line per round of each topology."""
    header = (f"{'topology':<9}{'runs':>5}  {'metadata':^15}  {'first graph ev.':^15}  {'completion':^15}  "
              f"{'runs/s':>7}{'errors':>7}{'twice':>6}{'late end':>9}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for name, topo in report["topologies"].items():
        for r in topo["rounds"]:
            times = "  ".join(_pair(r[k]) for k in ("first_event", "first_graph_event", "completion"))
            runs = f"{r['runs']}" if r["mode"] == "concurrent" else f"1x{r['runs']}"
            counts = f"{r['errors']:>7}{r['executed_twice']:>6}{r['end_after_last_graph_event_over_900ms']:>9}"
            print(f"{name:<9}{runs:>5}  {times}  {r['runs_per_s']:>7.1f}{counts}")
    print("  1xN: N runs one after the other (latency alone); twice: runs with attempt > 1; late end: runs whose")
    print("  end came > 0.9 s after their last graph event (alone: a missed notification; under load: also queueing)")
    for name, topo in report["topologies"].items():
        print(f"  {name}: {topo['topology']}; ready in {topo['ready_s']} s")
        for r in topo["rounds"]:
            if r["errors"] or r["rows_not_success"] > 0:
                print(f"    {r['runs']} runs: {r['rows_not_success']} rows not success; errors: {r['error_samples']}")


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"Concurrent SSE runs of the 5-node chain graph ({report['postgres']}, {report['cpu_count']} CPUs); "
          "times in ms, p50 / p95")  # fmt: skip
    print_rounds(report)
    kill = report.get("kill")
    if kill:
        k = kill
        print(f"Kill check: {kill['runs']} background runs over two servers (lease {kill['lease_s']} s, "
              f"{kill['delay_s']} s in n1), one SIGKILLed at {kill['rows_at_kill']} queued "
              f"({kill['kill_after_s']} s in)")  # fmt: skip
        after = k["after_kill_s"]

        def since(mark: str) -> str:
            return f"{after[mark]} s" if mark in after else "never"

        lines = [
            ("running on the killed server at the kill", k["running_on_victim_at_kill"]),
            ("after the kill: its owner lock free", since("owner_lock_free")),
            ("  none of its runs still running (requeued)", since("orphans_requeued")),
            ("  every re-executed run success", since("orphans_success")),
            ("  every run success", f"{since('all_success')} (batch {k['batch_s']} s from the first request)"),
            ("requests sent to the survivor instead", f"{k['requests_redirected_to_survivor']} (+"
             f"{k['requests_retried_on_survivor']} retried after failing; {k['requests_failed']} failed)"),
            ("runs with attempt 2+", f"{k['attempt_2_or_more']} (max attempt {k['max_attempt']})"),
            (f"runs lost (not success after {args.kill_timeout:g} s)",
             f"{k['lost']} (rows {k['run_rows']}, final {k['final_status']})"),
        ]  # fmt: skip
        for label, value in lines:
            print(f"  {label:<46}{value}")
    s: dict[str, Any] = report["savers"]
    print(f"Checkpoint cost, {args.invocations} sequential runs each ({s['postgres']['supersteps']} checkpoints a run)")
    for name in ("memory", "postgres", "postgres_exit"):
        print(f"  {name:<14} {s[name]['per_run_ms']:>8} ms/run   {s[name]['per_superstep_ms']:>7} ms/superstep")
    print(
        f"  Postgres overhead per superstep: {s['overhead_per_superstep_ms']} ms "
        f"(durability='exit': {s['overhead_per_superstep_exit_ms']} ms)"
    )
    lock: dict[str, Any] = report["saver_lock"]
    print(f"{lock['runs']} concurrent in-process runs (no HTTP), pool of 10 connections")
    for name in ("stock_saver", "pooled_saver"):
        print(f"  {name:<20} {lock[name]['runs_per_s']:>7} runs/s ({lock[name]['wall_s']} s)")
    prof = report.get("profile")
    if prof and "skipped" in prof:
        print(f"Profile skipped: {prof['skipped']}")
    elif prof:
        p, c = prof, prof["cpu_ms_per_run_unsampled"]
        print(
            f"Profile: {p['runs']} stream runs {_pace(p['batch'])} under py-spy --gil ({p['rate_hz']} Hz): "
            f"{p['ms_per_run']} ms a run sampled, {p['ms_per_run_unsampled']} ms unsampled ({p['errors']} errors)"
        )
        print(
            f"  CPU a run, unsampled (/proc): server {c['server']} ms, postgres {c['postgres']} ms, "
            f"bench client {c['client']} ms"
        )
        print(f"  GIL held {round(100 * p['gil_share_of_wall'])}% of the sampled wall time ({p['samples']} samples)")
        print("  share of the server's samples (parts overlap)")
        for row in prof["breakdown"]:
            print(f"    {row['pct']:>5.1f}%  {row['part']}")
        print("  top cumulative (on the stack; event loop left out, wrappers folded into what they wrap)")
        for entry in prof["top_cumulative"]:
            folded = f"  (+{entry['folded']} folded)" if entry["folded"] else ""
            print(f"    {entry['pct']:>5.1f}%  {entry['function']}{folded}")
        print("  top self (on top of the stack)")
        for entry in prof["top_self"]:
            print(f"    {entry['pct']:>5.1f}%  {entry['function']}")
    print(f"Total {report['total_s']} s; JSON in {OUT.relative_to(ROOT)}")


def _counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _topologies(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in TOPOLOGIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown topology {unknown}; known: {', '.join(TOPOLOGIES)}")
    return names


async def against(args: argparse.Namespace) -> None:
    """``--against URL``: the rounds against a server started by someone else (to compare versions)."""
    client = httpx.AsyncClient(base_url=args.against, timeout=120,
                               limits=httpx.Limits(max_connections=max([*args.runs, args.warmup]) + 10))  # fmt: skip
    label = f"against-{uuid.uuid4().hex[:8]}"
    try:
        rounds = await run_rounds([client], None, label, args)
    finally:
        await client.aclose()
    report = {"topologies": {"against": {"topology": args.against, "processes": 1, "ready_s": 0, **rounds}}}
    print_rounds(report)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=_counts, default=[100, 500], help="concurrent runs per round (default 100,500)")
    parser.add_argument("--topologies", type=_topologies, default=list(TOPOLOGIES),
                        help="one,two,split (default all three)")  # fmt: skip
    parser.add_argument("--sequential", type=int, default=30, help="runs one at a time per topology (30; 0: none)")
    parser.add_argument("--warmup", type=int, default=100,
                        help="concurrent runs of the warm-up round per topology (default 100)")
    parser.add_argument("--kill", action=argparse.BooleanOptionalAction, default=True, help="kill check (default on)")
    parser.add_argument("--kill-runs", type=int, default=200, help="background runs of the kill check (default 200)")
    parser.add_argument("--kill-delay", type=float, default=0.5, help="seconds each kill-check run waits (0.5)")
    parser.add_argument("--kill-inflight", type=int, default=16, help="kill-check requests in flight at once (16)")
    parser.add_argument("--kill-timeout", type=float, default=120, help="seconds after the kill before a run is lost")
    parser.add_argument("--invocations", type=int, default=50, help="sequential runs per saver (default 50)")
    parser.add_argument("--pool", type=int, default=10, help="database pool size per process (default 10)")
    parser.add_argument("--profile", type=int, default=200, help="stream runs sampled with py-spy (200; 0: off)")
    parser.add_argument(
        "--profile-batch",
        type=int,
        default=1,
        help="profiled runs started at once (1: one after the other; 100: CPU under load)",
    )
    parser.add_argument("--fast", action="store_true", help="PostgreSQL with fsync/synchronous_commit off")
    parser.add_argument("--against", metavar="URL", help="only the rounds, against a server already running at URL "
                        "(any version that serves the chain graph, auth off; nothing read from its database)")
    args = parser.parse_args()
    if args.against:
        return await against(args)

    began = time.perf_counter()
    report: dict[str, Any] = {
        "postgres": "fast (fsync off)" if args.fast else "default durability settings",
        "cpu_count": os.cpu_count(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "topologies": {},
    }
    with tempfile.TemporaryDirectory(prefix="rimas-bench-") as tmp:
        workdir = Path(tmp)
        if os.geteuid() == 0:  # postgres then runs as another user, which must be able to search this folder
            os.chmod(tmp, 0o711)
        config = workdir / "langgraph.json"
        config.write_text(json.dumps({"graphs": {"chain": f"{CHAIN}:graph"}}))
        cluster = EmbeddedPostgres(workdir / "pg", fast=args.fast)
        cluster.start()
        try:
            for topology in args.topologies:
                report["topologies"][topology] = await topology_rounds(topology, cluster, workdir, config, args)
            if args.kill:
                report["kill"] = await kill_check(cluster, workdir, config, args)
            savers_url = fresh_database(cluster, "bench_savers")
            report["savers"] = await saver_overhead(savers_url, config, args.invocations)
            report["saver_lock"] = await saver_concurrency(savers_url, config, min(args.runs or [100]))
            if args.profile:
                report["profile"] = await profile(cluster, workdir, config, args)
        finally:
            cluster.stop()
    report["total_s"] = round(time.perf_counter() - began, 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    print_report(report, args)


if __name__ == "__main__":
    asyncio.run(main())
