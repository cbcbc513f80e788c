"""Fixtures for the knowledge-base tests: the packaged embedder and Qdrant in local (in-memory) mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from qdrant_client import QdrantClient

from rag.embeddings import StaticEmbedder, load_static_embedder
from rag.policy import DEFAULT_POLICY_PATH
from rag.service import KnowledgeBase


@pytest.fixture(scope="session")
def embedder() -> StaticEmbedder:
    return load_static_embedder()


@pytest.fixture(scope="session")
def policy_data() -> dict:
    """The packaged policy file as plain data (copy before changing it)."""
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def ingested_kb(embedder: StaticEmbedder) -> Iterator[KnowledgeBase]:
    """A read-only knowledge base with the policy documents ingested (shared by search tests)."""
    client = QdrantClient(":memory:")
    kb = KnowledgeBase(client, embedder)
    kb.ingest_policy_documents()
    yield kb
    client.close()


@pytest.fixture
def kb(embedder: StaticEmbedder) -> Iterator[KnowledgeBase]:
    """A fresh, empty knowledge base for tests that change it."""
    client = QdrantClient(":memory:")
    yield KnowledgeBase(client, embedder)
    client.close()


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[dict], Path]:
    """Write policy data to a YAML file in the test's temporary folder and return its path."""

    def write(data: dict) -> Path:
        path = tmp_path / "policy.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write
