"""Qdrant local mode is one process per folder: a second opener, or a second `rimas serve`, is told why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from server.qdrant import QdrantLockedError, open_qdrant

RIMAS = Path(sys.executable).parent / "rimas"


@pytest.fixture
def held_store(settings_factory: Any) -> Iterator[tuple[Any, QdrantClient]]:
    """Settings on a temp data dir, and a client holding its local Qdrant folder (as a running server does)."""
    settings = settings_factory()
    holder = open_qdrant(settings)
    yield settings, holder
    holder.close()


def test_second_opener_is_told_who_holds_the_store(held_store: tuple[Any, QdrantClient]) -> None:
    settings, _ = held_store
    with pytest.raises(QdrantLockedError) as info:
        open_qdrant(settings)
    message = str(info.value)
    assert f"another process holds {settings.qdrant_path.resolve()}" in message
    assert "stop it, or set QDRANT_URL to use a Qdrant server" in message


def test_store_opens_again_once_released(settings_factory: Any) -> None:
    settings = settings_factory()
    open_qdrant(settings).close()
    open_qdrant(settings).close()


def test_second_serve_on_the_same_data_dir_exits_with_one_line(
    held_store: tuple[Any, QdrantClient], tmp_path: Path
) -> None:
    settings, _ = held_store
    own = {"DATABASE_URL", "QDRANT_URL"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIMAS_") and k not in own}
    env.update(RIMAS_DATA_DIR=str(settings.data_dir), RIMAS_PORT="1")
    done = subprocess.run([str(RIMAS), "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    record = json.loads(lines[0])  # stderr is not a terminal: a JSON log line
    assert record["level"] == "error"
    assert record["message"].startswith(f"cannot start: another process holds {settings.qdrant_path.resolve()}")
    assert "QDRANT_URL" in record["message"]
    assert not (settings.data_dir / "pg").exists()  # nothing else was started
