"""Model registry: versions by content hash and time, metadata, latest, resolution of paths."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from ml.errors import InputError
from ml.registry import content_hash, data_fingerprint, latest, list_versions, load_ref, resolve, save


def _save(root: Path, payload: bytes, when: datetime, name: str = "delay") -> str:
    ref = save(root, name, {"model.txt": payload}, {"metrics": {"auc": 0.7}},
               lambda meta: {"model_card.md": f"# card {meta['version']}\n"}, now=when)
    return ref.version


def test_versions_are_timestamp_plus_content_hash_and_ordered(tmp_path: Path) -> None:
    v1 = _save(tmp_path, b"first", datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    v2 = _save(tmp_path, b"second", datetime(2026, 1, 2, 12, 0, tzinfo=UTC))
    assert re.fullmatch(r"20260101T120000Z-[0-9a-f]{12}", v1)
    assert v1.endswith(content_hash({"model.txt": b"first"})[:12])
    assert [r.version for r in list_versions(tmp_path, "delay")] == [v1, v2]
    newest = latest(tmp_path, "delay")
    assert newest is not None and newest.version == v2
    assert latest(tmp_path, "demand") is None


def test_metadata_and_documents_are_written_with_the_version(tmp_path: Path) -> None:
    version = _save(tmp_path, b"x", datetime(2026, 1, 1, tzinfo=UTC))
    folder = tmp_path / "delay" / version
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["version"] == version and meta["name"] == "delay"
    assert meta["metrics"] == {"auc": 0.7}
    assert meta["artifacts"] == ["model.txt"]
    assert {"python", "lightgbm", "numpy", "pandas", "scikit-learn"} <= set(meta["libraries"])
    assert (folder / "model_card.md").read_text() == f"# card {version}\n"
    assert not [p for p in (tmp_path / "delay").iterdir() if p.name.startswith(".tmp")]


def test_same_content_same_second_is_one_version(tmp_path: Path) -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert _save(tmp_path, b"x", when) == _save(tmp_path, b"x", when)
    assert len(list_versions(tmp_path, "delay")) == 1


def test_resolve_accepts_a_models_dir_or_a_version_dir(tmp_path: Path) -> None:
    version = _save(tmp_path, b"x", datetime(2026, 1, 1, tzinfo=UTC))
    assert resolve(tmp_path, "delay").version == version
    assert resolve(tmp_path / "delay" / version, "delay").version == version
    with pytest.raises(InputError, match="holds a 'delay' model"):
        resolve(tmp_path / "delay" / version, "demand")
    with pytest.raises(InputError, match="rimas train demand"):
        resolve(tmp_path, "demand")
    with pytest.raises(InputError, match="unknown model name"):
        latest(tmp_path, "churn")
    with pytest.raises(InputError, match="no model"):
        load_ref(tmp_path)


def test_data_fingerprint_changes_with_the_data() -> None:
    a = pd.DataFrame({"x": [1, 2, 3]})
    assert data_fingerprint(a) == data_fingerprint(a.copy())
    assert data_fingerprint(a)["sha256"] != data_fingerprint(a.assign(x=[1, 2, 4]))["sha256"]
    assert data_fingerprint(a)["rows"] == 3
