"""File-system model registry: ``<models_dir>/<name>/<version>/``.

A version is ``<UTC timestamp>-<content hash>`` (for example ``20261031T120000Z-3f9a0c1b2d4e``): the hash is
the SHA-256 of the model artefacts (not of the metadata), so the same model trained twice is recognisable,
and the timestamp orders versions. Each version directory holds the artefacts, ``metadata.json`` (features,
training-data fingerprint, metrics, threshold, library versions, ...) and any rendered documents such as the
model card. Versions are written to a temporary directory and renamed into place, so a reader never sees a
half-written model. Only plain text/JSON artefacts are stored (no pickles), so loading a model never runs
code from the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import pandas as pd

from ml.errors import InputError

METADATA_FILE = "metadata.json"
MODEL_NAMES = ("delay", "demand", "anomaly")


@dataclass(frozen=True)
class ModelRef:
    """One stored model version."""

    name: str
    version: str
    path: Path
    metadata: dict[str, Any]

    def file(self, filename: str) -> Path:
        return self.path / filename


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a model depends on."""
    out = {"python": platform.python_version()}
    for dist in ("lightgbm", "scikit-learn", "pandas", "numpy"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[dist] = "missing"
    return out


def dumps(data: Any) -> str:
    """Indented, key-sorted JSON; NaN and infinities become null (strict JSON)."""
    return json.dumps(_json_safe(data), indent=2, sort_keys=True, default=str) + "\n"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def content_hash(artifacts: Mapping[str, bytes]) -> str:
    """SHA-256 over the artefact names and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(artifacts):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(artifacts[name]).digest())
    return digest.hexdigest()


def data_fingerprint(frame: pd.DataFrame) -> dict[str, Any]:
    """Fingerprint of a training frame: row count, columns and a SHA-256 of its values."""
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return {"rows": len(frame), "columns": [str(c) for c in frame.columns], "sha256": digest.hexdigest()}


def save(
    models_dir: str | Path,
    name: str,
    artifacts: Mapping[str, bytes],
    metadata: Mapping[str, Any],
    documents: Callable[[dict[str, Any]], Mapping[str, str]] | None = None,
    *,
    now: datetime | None = None,
) -> ModelRef:
    """Store a new version of model ``name``; return its reference.

    ``documents`` receives the final metadata (with ``version``) and returns extra text files to write,
    e.g. ``{"model_card.md": ...}``.
    """
    _check_name(name)
    created = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    sha = content_hash(artifacts)
    version = f"{created:%Y%m%dT%H%M%SZ}-{sha[:12]}"
    meta: dict[str, Any] = {
        **metadata,
        "name": name,
        "version": version,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "content_sha256": sha,
        "artifacts": sorted(artifacts),
        "libraries": library_versions(),
    }
    root = Path(models_dir) / name
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if final.is_dir():
        return load_ref(final)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        for fname, data in artifacts.items():
            (tmp / fname).write_bytes(data)
        for fname, text in (documents(meta) if documents else {}).items():
            (tmp / fname).write_text(text, encoding="utf-8")
        (tmp / METADATA_FILE).write_text(dumps(meta), encoding="utf-8")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ModelRef(name=name, version=version, path=final, metadata=meta)


def load_ref(path: str | Path) -> ModelRef:
    """The reference of the version stored in directory ``path``."""
    p = Path(path)
    meta_path = p / METADATA_FILE
    if not meta_path.is_file():
        raise InputError(f"no model in {p} (missing {METADATA_FILE})", field="model")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"unreadable {METADATA_FILE} in {p}: {exc}", field="model") from exc
    return ModelRef(name=str(meta["name"]), version=str(meta["version"]), path=p, metadata=meta)


def list_versions(models_dir: str | Path, name: str) -> list[ModelRef]:
    """All stored versions of ``name``, oldest first."""
    _check_name(name)
    root = Path(models_dir) / name
    if not root.is_dir():
        return []
    refs = [
        load_ref(d)
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(".") and (d / METADATA_FILE).is_file()
    ]
    return sorted(refs, key=lambda r: (str(r.metadata.get("created_at", "")), r.version))


def latest(models_dir: str | Path, name: str) -> ModelRef | None:
    """The newest stored version of ``name``, or None."""
    versions = list_versions(models_dir, name)
    return versions[-1] if versions else None


def resolve(path: str | Path, name: str) -> ModelRef:
    """A version directory, or a models directory (its latest ``name`` version)."""
    p = Path(path)
    if (p / METADATA_FILE).is_file():
        ref = load_ref(p)
        if ref.name != name:
            raise InputError(f"{p} holds a {ref.name!r} model, not {name!r}", field="model")
        return ref
    newest = latest(p, name)
    if newest is None:
        raise InputError(f"no {name!r} model under {p}; train one with `rimas train {name}`", field="model")
    return newest


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise InputError(f"unknown model name {name!r}", field="name", allowed=MODEL_NAMES)
