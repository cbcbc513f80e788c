"""The Qdrant client: a server when ``QDRANT_URL`` is set, otherwise local mode under ``<data_dir>/qdrant``.

Local mode keeps the same API (dense + sparse vectors, RRF fusion, payload filters) but is a brute-force
store locked by one process; point ``QDRANT_URL`` at a server for scale or for several processes.
"""

from __future__ import annotations

from qdrant_client import QdrantClient

from server.settings import Settings


def open_qdrant(settings: Settings) -> QdrantClient:
    """Open the client the settings describe (the local folder is created if missing)."""
    if settings.qdrant_url:
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantClient(url=settings.qdrant_url, api_key=api_key, timeout=10)
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(settings.qdrant_path))


def qdrant_kind(settings: Settings) -> str:
    return "server" if settings.qdrant_url else "local"
