"""BM25 sparse vectors for Qdrant, computed without a model.

Documents get the BM25 term-frequency part, ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``,
and queries a weight of 1 per distinct term; the collection's sparse vector uses Qdrant's IDF modifier,
so the dot product Qdrant computes is the BM25 score. ``avg_len`` is a constant rather than a corpus
statistic so that a chunk's vector never changes when other chunks are added (idempotent ingestion).
Terms are lower-cased, stop words dropped and plural/-ed/-ing endings folded; term ids are a stable
hash of the term.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass

K1 = 1.2
B = 0.75
AVG_LEN = 80.0

_TOKEN = re.compile(r"[a-z]+|\d+(?:\.\d+)?")
_STOP_TEXT = """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves s t"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


def stem(word: str) -> str:
    """Fold common English endings: ``upgrades``/``upgraded`` -> ``upgrad``, ``shipping`` -> ``ship``."""
    if word.isdigit() or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """Normalised BM25 terms of a text."""
    folded = unicodedata.normalize("NFKD", text.lower())
    ascii_text = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return [stem(tok) for tok in _TOKEN.findall(ascii_text) if tok not in STOP_WORDS]


def term_id(term: str) -> int:
    return zlib.crc32(term.encode("utf-8")) & 0x7FFFFFFF


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


def _to_sparse(weights: dict[int, float]) -> SparseVector:
    ordered = sorted(weights.items())
    return SparseVector(indices=[i for i, _ in ordered], values=[v for _, v in ordered])


def document_vector(text: str) -> SparseVector:
    """BM25 document-side weights (term frequency saturation and length normalisation)."""
    counts = Counter(terms(text))
    length = sum(counts.values())
    norm = K1 * (1 - B + B * length / AVG_LEN)
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        tid = term_id(term)
        weights[tid] = weights.get(tid, 0.0) + tf * (K1 + 1) / (tf + norm)
    return _to_sparse(weights)


def query_vector(text: str) -> SparseVector:
    """Query-side weights: 1 per distinct term (Qdrant multiplies in the IDF)."""
    return _to_sparse({term_id(term): 1.0 for term in set(terms(text))})
