"""Schemathesis over the served OpenAPI document, against ``rimas serve`` on a real database: every check
(server errors, status codes, content types, headers, response schemas, negative data rejected, positive
data accepted, auth enforced, deleted resources gone), the coverage, fuzzing and stateful phases, a few
examples per operation and a fixed seed. It fails on any 5xx and on any answer the document does not allow.

The same command with more examples is the full run (README, "Fuzzing the API")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEYS, GRAPHS, KEYS, write_langgraph_json

ST = Path(sys.executable).parent / "st"
HOOKS = Path(__file__).with_name("fuzz_hooks.py")  # delayed starts made immediate
SEED = "20261204"
# the test graphs less the slow one (3 s a run) and a second chat with approvals: each graph is a variant of every
# run body, fuzzed in full
FUZZED_GRAPHS = {name: f"{GRAPHS / name}.py:graph" for name in ("approval", "chain", "chat", "hitl_agent", "ledger")}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny delay and anomaly models, so the scoring routes answer (without them they are 503 by design)."""
    from ml.anomaly import AnomalyTrainConfig, save_anomaly, train_anomaly
    from ml.delay.artifacts import save_delay
    from ml.delay.train import DelayTrainConfig, train_delay
    from ml.synth import generate

    folder = tmp_path_factory.mktemp("fuzz-models")
    orders = generate(seed=7, scale="demo")["orders"]  # every category of every field
    save_delay(train_delay(orders, DelayTrainConfig(folds=3, max_rows=4000), source="synth demo"), folder)
    save_anomaly(train_anomaly(orders, AnomalyTrainConfig(n_estimators=50), source="synth demo"), folder)
    return folder


@pytest.fixture
def server(serve_process: Any, database_url: str, tmp_path: Path, models: Path) -> Any:
    process = serve_process({
        "RIMAS_MODELS_DIR": str(models),
        "DATABASE_URL": database_url,
        "RIMAS_SEED_ON_START": "false",
        "RIMAS_TRAIN_MODELS_ON_START": "false",
        "RIMAS_API_KEYS": API_KEYS,
        "RIMAS_LANGGRAPH_CONFIG": str(write_langgraph_json(tmp_path, FUZZED_GRAPHS)),
        "RIMAS_LOG_LEVEL": "WARNING",
    })  # fmt: skip
    process.start(ready="/ok", timeout=90)
    return process


def fuzz_command(url: str, out: Path, examples: int) -> list[str]:
    return [
        str(ST), "run", f"{url}/openapi.json", "--header", f"X-API-Key: {KEYS['admin']}",
        "--checks", "all", "--max-examples", str(examples), "--seed", SEED, "--workers", "1",
        "--request-timeout", "60", "--generation-database", "none", "--no-color",
        "--report", "junit", "--report-dir", str(out),
    ]  # fmt: skip


def test_the_api_survives_fuzzing_and_matches_its_document(server: Any, tmp_path: Path) -> None:
    done = subprocess.run(fuzz_command(server.url, tmp_path / "report", 6), capture_output=True, text=True,
                          timeout=600, check=False, cwd=tmp_path,  # its cache folder lands there
                          env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)})  # fmt: skip
    summary = done.stdout[done.stdout.find("SUMMARY"):]
    failures = done.stdout[: done.stdout.find("=== WARNINGS")][-20000:]  # the failures, not the data warnings
    assert done.returncode == 0, failures + summary + done.stderr[-2000:]
    assert "Selected: 100/100" in summary and "Tested: 100" in summary, summary
    assert "✅ Stateful" in summary, summary
