"""``rimas serve`` as a real process on embedded PostgreSQL: cold start, SIGTERM, restart, SIGKILL recovery."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

RIMAS = Path(sys.executable).parent / "rimas"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_pids(data_dir: Path) -> list[int]:
    """Live (non-zombie) postgres processes serving ``data_dir``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"postgres" in cmdline and str(data_dir).encode() in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


class Server:
    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "server.log"

    def start(self) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RIMAS_")}
        for var in ("DATABASE_URL", "QDRANT_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
            env.pop(var, None)
        env.update(RIMAS_PORT=str(self.port), RIMAS_DATA_DIR=str(self.workdir / "data"), RIMAS_SEED_SCALE="small")
        started = time.perf_counter()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(RIMAS), "serve"], cwd=self.workdir, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"server not healthy in 90 s:\n{self.log.read_text()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def terminate(self) -> None:
        """SIGTERM: a graceful shutdown (uvicorn re-raises the signal after it, hence -15)."""
        assert self.signal(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "resources closed" in self.log.read_text().rsplit("Shutting down", 1)[-1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path, _free_port())
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.signal(signal.SIGTERM)
    for pid in _postgres_pids(tmp_path / "data"):  # never leave a cluster behind, even on failure
        os.kill(pid, signal.SIGTERM)


def test_cold_start_sigterm_restart(server: Server) -> None:
    cold = server.start()
    health = httpx.get(f"{server.url}/health", timeout=5).json()
    assert health["status"] == "ok"
    assert health["components"]["database"]["kind"] == "embedded"
    assert health["components"]["qdrant"]["kind"] == "local"
    models = health["components"]["models"]["models"]
    assert {name: m["status"] for name, m in models.items()} == {"delay": "trained", "demand": "trained"}
    assert _postgres_pids(server.workdir / "data"), "embedded postgres should be running"

    server.terminate()
    assert _postgres_pids(server.workdir / "data") == []

    warm = server.start()
    assert warm < cold  # no re-init, no re-seed, no re-training on restart
    models_after = httpx.get(f"{server.url}/health", timeout=5).json()["components"]["models"]["models"]
    assert {name: m["status"] for name, m in models_after.items()} == {"delay": "present", "demand": "present"}
    assert models_after["delay"]["version"] == models["delay"]["version"]
    assert httpx.get(f"{server.url}/health", timeout=5).json()["components"]["knowledge"]["points"]["policies"] > 0
    log = server.log.read_text()
    assert log.count("seeding demo data") == 1, "the restart must reuse the seeded data"
    assert log.count("initialising embedded postgres") == 1
    server.terminate()
    assert _postgres_pids(server.workdir / "data") == []


def test_killed_server_leaves_a_cluster_the_next_start_adopts(server: Server) -> None:
    server.start()
    server.signal(signal.SIGKILL)
    orphans = _postgres_pids(server.workdir / "data")
    assert orphans, "SIGKILL cannot stop postgres; the next start must adopt it"
    server.start()
    assert "adopting embedded postgres" in server.log.read_text()
    server.terminate()
    assert _postgres_pids(server.workdir / "data") == []
