"""Benchmark: slow clients (slowloris) against uvicorn configured as ``rimas serve``, and a normal client meanwhile.

1. Starts, in a child process, uvicorn on a free 127.0.0.1 port with the options ``rimas serve`` passes (the
   protocol class of server/http_limits.py with ``--header-timeout``, ``timeout_keep_alive``, the explicit
   header size limit) and the ``BodyLimit`` middleware around a tiny app with ``GET /ok``.
2. Opens ``--connections`` sockets that each send half of a request's headers and then one more byte every
   second (so no connection is ever idle), and counts how many the server still holds open one second after
   the header deadline, how many were answered 408, and when the last one was closed.
3. Meanwhile a normal client opens a new connection and calls ``GET /ok`` every 20 ms; its latency (and any
   error) is compared with the same calls on the idle server.
4. Unless ``--no-baseline``, repeats it all with uvicorn's stock h11 protocol (what ``rimas serve`` used
   before), where the slow connections are held for as long as the clients like.

Figures, not pass/fail. ``python bench/bench_slow_clients.py [--connections 500] [--header-timeout 2]``; a JSON
copy of the figures goes to bench/out/bench_slow_clients.json.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _timing import free_port, percentile

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "bench_slow_clients.json"
PARTIAL = b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\nX-Slow: "
PROBE_EVERY = 0.02


def serve(mode: str, port: int, header_timeout: float) -> None:
    """The child process: uvicorn as ``rimas serve`` runs it (``limited``) or with stock h11 (``plain``)."""
    import uvicorn
    from fastapi import FastAPI

    from server.http_limits import MAX_HEADER_BYTES, header_timeout_protocol
    from server.middleware import BodyLimit

    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    options: dict[str, Any] = {"http": "h11"}
    if mode == "limited":
        options = {"http": header_timeout_protocol(header_timeout), "timeout_keep_alive": 5,
                   "h11_max_incomplete_event_size": MAX_HEADER_BYTES}  # fmt: skip
    uvicorn.run(BodyLimit(app, limit=4 * 1024 * 1024, timeout=30.0), host="127.0.0.1", port=port, log_config=None,
                log_level="warning", timeout_graceful_shutdown=1, **options)  # fmt: skip


def get_ok(port: int) -> float:
    """One ``GET /ok`` on a new connection; seconds taken (raises on anything but 200)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/ok")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
    finally:
        conn.close()
    return time.perf_counter() - started


class Probe(threading.Thread):
    """The normal client: ``GET /ok`` every 20 ms until stopped."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.stop = port, threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.wait(PROBE_EVERY):
            try:
                self.latencies.append(get_ok(self.port))
            except (OSError, RuntimeError, http.client.HTTPException) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")


def latency(values: list[float], errors: list[str]) -> dict[str, Any]:
    return {"requests": len(values), "errors": len(errors), "error_samples": errors[:3],
            "p50_ms": round(percentile(values, 0.5) * 1000, 2), "p95_ms": round(percentile(values, 0.95) * 1000, 2),
            "max_ms": round(max(values, default=float("nan")) * 1000, 2)}  # fmt: skip


class SlowClient:
    """One slowloris connection: half the headers, then a byte a second; notes what the server did."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(PARTIAL)
        self.sock.setblocking(False)
        self.open, self.answer = True, b""

    def poll(self) -> None:
        while self.open:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:  # reset
                data = b""
            if not data:
                self.open = False
                self.sock.close()
            self.answer += data

    def dribble(self) -> None:
        if self.open:
            with contextlib.suppress(OSError):  # the server has closed it; poll() sees the end
                self.sock.send(b"a")


def measure(mode: str, connections: int, header_timeout: float) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", mode, "--port", str(port),
                               "--header-timeout", str(header_timeout)], cwd=ROOT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get_ok(port)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {mode} server did not start") from None
                time.sleep(0.1)
        idle: list[float] = [get_ok(port) for _ in range(100)]

        probe = Probe(port)
        probe.start()
        opened = time.monotonic()
        clients = [SlowClient(port) for _ in range(connections)]
        all_open = time.monotonic()
        check_at = all_open + header_timeout + 1
        last_closed: float | None = None
        next_dribble = all_open + 1
        while time.monotonic() < check_at:
            time.sleep(0.05)
            if time.monotonic() >= next_dribble:
                next_dribble += 1
                for client in clients:
                    client.dribble()
            for client in clients:
                client.poll()
            if last_closed is None and not any(c.open for c in clients):
                last_closed = time.monotonic()
        probe.stop.set()
        probe.join()
        still_open = sum(c.open for c in clients)
        for client in clients:
            if client.open:
                client.sock.close()
        return {
            "mode": mode,
            "connections": connections,
            "header_timeout_s": header_timeout,
            "open_s": round(all_open - opened, 3),
            "still_open_after_timeout_plus_1s": still_open,
            "answered_408": sum(c.answer.startswith(b"HTTP/1.1 408") for c in clients),
            "closed_silently": sum(not c.open and not c.answer for c in clients),
            "all_closed_after_s": None if last_closed is None else round(last_closed - all_open, 2),
            "ok_idle": latency(idle, []),
            "ok_during_slow_clients": latency(probe.latencies, probe.errors),
        }
    finally:
        server.terminate()
        server.wait(timeout=15)


def report(r: dict[str, Any]) -> None:
    what = "rimas serve (header deadline)" if r["mode"] == "limited" else "stock uvicorn h11 (before)"
    print(f"{what}: {r['connections']} slowloris connections opened in {r['open_s']} s, header timeout "
          f"{r['header_timeout_s']} s")  # fmt: skip
    after = r["all_closed_after_s"]
    closed = "held" if after is None else f"all closed {after} s after the last opened"
    print(f"  still open at timeout + 1 s   {r['still_open_after_timeout_plus_1s']:>5}   ({r['answered_408']} "
          f"answered 408, {r['closed_silently']} closed silently; {closed})")  # fmt: skip
    for label, key in (("GET /ok, idle server", "ok_idle"), ("GET /ok, during the attack", "ok_during_slow_clients")):
        s = r[key]
        print(f"  {label:<28}  p50 {s['p50_ms']:>7} ms   p95 {s['p95_ms']:>7} ms   max {s['max_ms']:>7} ms   "
              f"({s['requests']} requests, {s['errors']} errors)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500, help="slow connections to open (default 500)")
    parser.add_argument("--header-timeout", type=float, default=2.0,
                        help="RIMAS_HEADER_TIMEOUT_SECONDS for the run (default 2; the service's is 10)")  # fmt: skip
    parser.add_argument("--no-baseline", action="store_true", help="skip the run with stock uvicorn h11")
    parser.add_argument("--serve", choices=["limited", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.header_timeout)
        return
    results = [measure("limited", args.connections, args.header_timeout)]
    if not args.no_baseline:
        results.append(measure("plain", args.connections, args.header_timeout))
    for result in results:
        report(result)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
