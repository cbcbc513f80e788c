"""Timing helpers shared by the benchmarks (run as ``python bench/bench_*.py``, so this folder is on the path)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of ``repeat`` calls of ``fn`` (seconds) and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank); NaN when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summary_ms(values: list[float], digits: int = 1) -> dict[str, float]:
    """p50 and p95 of ``values`` (seconds) in milliseconds; NaN when there are none."""
    if not values:
        return {"p50_ms": float("nan"), "p95_ms": float("nan")}
    return {f"p{round(q * 100)}_ms": round(percentile(values, q) * 1000, digits) for q in (0.5, 0.95)}
