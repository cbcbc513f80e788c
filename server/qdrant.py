"""The Qdrant client: a server when ``QDRANT_URL`` is set, otherwise local mode under ``<data_dir>/qdrant``.

Local mode keeps the same API (dense + sparse vectors, RRF fusion, payload filters) but is a brute-force
store locked by one process; point ``QDRANT_URL`` at a server for scale or for several processes. When
another process holds the local store, opening it raises :class:`QdrantLockedError`, which says so.
"""

from __future__ import annotations

from pathlib import Path

from qdrant_client import QdrantClient

from server.settings import Settings


class QdrantLockedError(RuntimeError):
    """The local Qdrant folder is in use by another process (or another client in this one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"another process holds {path} (Qdrant local mode allows one process per folder): stop it, "
            f"or set QDRANT_URL to use a Qdrant server"
        )


def open_qdrant(settings: Settings) -> QdrantClient:
    """Open the client the settings describe (the local folder is created if missing)."""
    if settings.qdrant_url:
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantClient(url=settings.qdrant_url, api_key=api_key, timeout=10)
    path = settings.qdrant_path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:  # qdrant-client reports the held file lock as a plain RuntimeError
        if "already accessed by another instance" in str(exc):
            raise QdrantLockedError(path) from exc
        raise


def check_qdrant_free(settings: Settings) -> None:
    """Raise :class:`QdrantLockedError` now if the local store is held, before anything else starts."""
    if not settings.qdrant_url:
        open_qdrant(settings).close()


def qdrant_kind(settings: Settings) -> str:
    return "server" if settings.qdrant_url else "local"
