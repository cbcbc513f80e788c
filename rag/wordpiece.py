"""A pure-Python BERT (uncased) WordPiece tokenizer, enough to drive the static embedding model.

It reproduces the normalisation, pre-tokenisation and greedy longest-match WordPiece of the
``tokenizers`` BERT pipeline (lower-casing, accent stripping, punctuation splitting, ``##``
continuations), so the packaged static model needs neither ``tokenizers`` nor ``transformers``.
``tests/rag`` checks the ids against ones produced by the reference tokenizer.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

_MAX_WORD_CHARS = 100


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def normalize(text: str) -> str:
    """BERT normaliser: drop control characters, space out CJK, lower-case, strip accents."""
    out: list[str] = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            out.append(" ")
        elif _is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    lowered = "".join(out).lower()
    decomposed = unicodedata.normalize("NFD", lowered)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def pre_tokenize(text: str) -> list[str]:
    """Split normalised text at whitespace and around every punctuation character."""
    words: list[str] = []
    current: list[str] = []
    for ch in text:
        if _is_whitespace(ch):
            if current:
                words.append("".join(current))
                current = []
        elif _is_punctuation(ch):
            if current:
                words.append("".join(current))
                current = []
            words.append(ch)
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


class WordPieceTokenizer:
    """Greedy longest-match-first WordPiece over a fixed vocabulary (token -> id)."""

    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]", prefix: str = "##") -> None:  # noqa: S107
        if unk_token not in vocab:
            raise ValueError(f"vocab: the unknown token {unk_token!r} is missing")
        self.vocab = vocab
        self.unk_id = vocab[unk_token]
        self.prefix = prefix
        self._word_ids = lru_cache(maxsize=65536)(self._word_to_ids)

    def _word_to_ids(self, word: str) -> tuple[int, ...]:
        if len(word) > _MAX_WORD_CHARS:
            return (self.unk_id,)
        ids: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            found: int | None = None
            while start < end:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                found = self.vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return (self.unk_id,)
            ids.append(found)
            start = end
        return tuple(ids)

    def encode(self, text: str, max_length: int | None = None) -> list[int]:
        """Token ids for ``text`` without special tokens, truncated to ``max_length`` ids."""
        ids: list[int] = []
        for word in pre_tokenize(normalize(text)):
            ids.extend(self._word_ids(word))
            if max_length is not None and len(ids) >= max_length:
                return ids[:max_length]
        return ids
