"""Start one ``rimas serve`` for a benchmark (run as ``python bench/bench_*.py``, so this folder is on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
RIMAS = Path(sys.executable).parent / "rimas"
DROPPED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DATABASE_URL", "QDRANT_URL")


def start_server(folder: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
    """``rimas serve`` on the data folder ``folder/data`` (auth off, deterministic: no RIMAS_*, LLM, database or
    Qdrant settings inherited), once ``/ok`` answers; and the seconds it took (a first start seeds and trains)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIMAS_") and k not in DROPPED}
    env.update(RIMAS_PORT=str(port), RIMAS_DATA_DIR=str(folder / "data"), RIMAS_LOG_LEVEL="WARNING",
               RIMAS_LANGGRAPH_CONFIG=str(REPO / "langgraph.json"))  # fmt: skip
    log_path = folder / "serve.log"
    started = time.perf_counter()
    with log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
        popen = subprocess.Popen([str(RIMAS), "serve"], cwd=folder, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise SystemExit(f"rimas serve exited:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ok", timeout=2).status_code == 200:
                return popen, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    popen.kill()
    raise SystemExit("rimas serve was not ready in 30 minutes")


@contextmanager
def fresh_server(prefix: str) -> Iterator[tuple[str, int, float]]:
    """``rimas serve`` on a new temp data folder for the block: its URL, its process id and the seconds it took to
    be ready (a first start seeds and trains); stopped and the folder removed afterwards."""
    from _timing import free_port

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # the embedded PostgreSQL runs as its own user
        port = free_port()
        popen, ready = start_server(folder, port)
        try:
            yield f"http://127.0.0.1:{port}", popen.pid, ready
        finally:
            popen.terminate()
            popen.wait(timeout=60)
