"""The offline static embedder matches the reference model2vec output; BM25 terms; OpenAI over HTTP."""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from rag.embeddings import EmbeddingError, OpenAIEmbedder, StaticEmbedder, make_embedder
from rag.sparse import document_vector, query_vector, stem, terms

REFERENCE = json.loads((Path(__file__).parent / "data" / "reference.json").read_text(encoding="utf-8"))


def test_tokenizer_matches_the_reference_tokenizer(embedder: StaticEmbedder) -> None:
    for text, expected in zip(REFERENCE["texts"], REFERENCE["token_ids"], strict=True):
        assert embedder.token_ids(text) == expected, text


def test_embeddings_match_the_reference_model(embedder: StaticEmbedder) -> None:
    ours = embedder.embed(REFERENCE["texts"])
    reference = np.asarray(REFERENCE["embeddings"], dtype=np.float32)
    assert ours.shape == (len(REFERENCE["texts"]), embedder.dim)
    for row, ref in zip(ours, reference, strict=True):
        if not ref.any():
            assert not row.any()
        else:
            assert float(row @ ref) > 0.999


def test_static_embeddings_are_semantic(embedder: StaticEmbedder) -> None:
    q, refund, carrier = embedder.embed([
        "How much money does the customer get back?",
        "A late order is compensated with a partial refund of the amount paid.",
        "The sea carrier accepts parcels up to a fixed weight.",
    ])
    assert q @ refund > q @ carrier
    assert embedder.name.startswith("static:") and embedder.dim == 256


def test_missing_model_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(EmbeddingError, match="cannot load the static embedding model"):
        StaticEmbedder(tmp_path)


def test_bm25_terms_and_vectors() -> None:
    assert [stem(w) for w in ["upgrades", "upgraded", "shipping", "refunds", "business", "called"]] == [
        "upgrad", "upgrad", "ship", "refund", "business", "call",
    ]
    assert terms("Can a road shipment be upgraded?") == ["road", "shipment", "upgrad"]
    first, again = document_vector("refund refund policy"), document_vector("refund refund policy")
    assert first == again and len(first.indices) == 2
    assert query_vector("the of and").indices == []


# ---------------------------------------------------------------- OpenAI-compatible server on 127.0.0.1


class _EmbeddingsHandler(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        data = []
        for i, text in enumerate(body["input"]):
            rng = np.random.default_rng(zlib.crc32(text.encode()))
            data.append({"object": "embedding", "index": i, "embedding": rng.normal(size=1536).round(4).tolist()})
        payload = json.dumps({"object": "list", "data": data[::-1], "model": body["model"],
                              "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def openai_server() -> Iterator[str]:
    _EmbeddingsHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_embedder_over_http(openai_server: str) -> None:
    embedder = make_embedder("sk-test", openai_server, None)
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.name, embedder.dim) == ("openai:text-embedding-3-small", 1536)
    embedder.batch_size = 2
    vectors = embedder.embed(["alpha", "beta", "", "gamma", "delta"])
    assert vectors.shape == (5, 1536)
    assert not vectors[2].any()
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 1, 3, 4]], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors[0], embedder.embed(["alpha"])[0], rtol=1e-6)
    requests = _EmbeddingsHandler.requests
    assert [len(r["input"]) for r in requests[:3]] == [2, 2, 1]
    assert requests[0]["path"] == "/v1/embeddings" and requests[0]["auth"] == "Bearer sk-test"
    assert requests[0]["model"] == "text-embedding-3-small"


def test_make_embedder_defaults_to_the_offline_model() -> None:
    assert isinstance(make_embedder(None, None, None), StaticEmbedder)
    assert isinstance(make_embedder("", "http://127.0.0.1:9/v1", "text-embedding-3-small"), StaticEmbedder)
