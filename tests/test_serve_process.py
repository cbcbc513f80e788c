"""``rimas serve`` as a real process on embedded PostgreSQL: cold start, SIGTERM, restart, SIGKILL recovery."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import httpx
import pytest

ServerProcess = Any  # tests/conftest.py: ServerProcess, built by the serve_process fixture


@pytest.fixture
def server(serve_process: Callable[[dict[str, str]], ServerProcess]) -> ServerProcess:
    return serve_process({"RIMAS_SEED_SCALE": "small"})


def _health(server: ServerProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/health", timeout=5).json()
    return body


def _terminate(server: ServerProcess) -> None:
    """SIGTERM is a graceful shutdown: resources closed, no postgres process left."""
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "resources closed" in server.log.read_text().rsplit("Shutting down", 1)[-1]
    assert server.postgres_pids() == []


def test_cold_start_sigterm_restart(server: ServerProcess) -> None:
    cold = server.start(ready="/health")
    health = _health(server)
    assert health["status"] == "ok"
    assert health["components"]["database"]["kind"] == "embedded"
    assert health["components"]["qdrant"]["kind"] == "local"
    models = health["components"]["models"]["models"]
    assert {name: m["status"] for name, m in models.items()} == {"delay": "trained", "demand": "trained",
                                                                 "anomaly": "trained"}
    assert server.postgres_pids(), "embedded postgres should be running"
    _terminate(server)

    warm = server.start(ready="/health")
    assert warm < cold  # no re-init, no re-seed, no re-training on restart
    health = _health(server)
    models_after = health["components"]["models"]["models"]
    assert {name: m["status"] for name, m in models_after.items()} == {"delay": "present", "demand": "present",
                                                                       "anomaly": "present"}
    assert models_after["delay"]["version"] == models["delay"]["version"]
    assert health["components"]["knowledge"]["points"]["policies"] > 0
    log = server.log.read_text()
    assert log.count("seeding demo data") == 1, "the restart must reuse the seeded data"
    assert log.count("initialising embedded postgres") == 1
    _terminate(server)


def test_killed_server_leaves_a_cluster_the_next_start_adopts(server: ServerProcess) -> None:
    server.start(ready="/health")
    server.stop(signal.SIGKILL)
    assert server.postgres_pids(), "SIGKILL cannot stop postgres; the next start must adopt it"
    server.start(ready="/health")
    assert "adopting embedded postgres" in server.log.read_text()
    _terminate(server)
