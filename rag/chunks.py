"""Turn documents into chunks with stable, content-derived point ids.

A chunk is one section (or one part of a long section). Its point id is a UUID derived from the
collection, document id, section, part and a SHA-256 of everything stored with it, so ingesting the same
content twice yields the same ids (nothing to do), and any change yields a new id (old one removed).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from rag.documents import META_KEYS, Document, Section

MAX_CHUNK_CHARS = 1500
_NAMESPACE = uuid.UUID("6f1c1c4e-8a3e-4c57-9a53-2d0b3c7e51a0")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

FILTER_KEYS = ("category", "agents", "mode", "warehouse", "severity", "doc_id", "source")


@dataclass(frozen=True)
class Chunk:
    """One retrievable unit: its point id, the text to embed and the payload to store."""

    point_id: str
    embed_text: str
    payload: dict[str, Any]


def _split_long(text: str, limit: int = MAX_CHUNK_CHARS) -> list[str]:
    """Pack paragraphs (then sentences, then hard cuts) into pieces of at most ``limit`` characters."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        units = [paragraph] if len(paragraph) <= limit else _SENTENCE_END.split(paragraph)
        for unit in units:
            while len(unit) > limit:
                pieces.append(unit[:limit])
                unit = unit[limit:]
            if pieces and len(pieces[-1]) + len(unit) + 2 <= limit:
                pieces[-1] = pieces[-1] + "\n\n" + unit
            elif unit.strip():
                pieces.append(unit)
    return [p.strip() for p in pieces if p.strip()]


def _embed_text(title: str, heading: str, body: str) -> str:
    head = title if heading == title else f"{title}: {heading}"
    return f"{head}\n{body}"


def content_hash(embed_text: str, payload: dict[str, Any]) -> str:
    stable = {k: v for k, v in payload.items() if k not in ("content_hash",)}
    blob = embed_text + "\n" + json.dumps(stable, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def section_chunks(
    section: Section, document: Document, collection: str, source: str, extra: dict[str, Any] | None = None
) -> list[Chunk]:
    """Chunks of one section with the payload used for filters, display and citation."""
    meta = {**document.metadata, **section.metadata}
    filter_meta = {k: meta[k] for k in META_KEYS if k in meta and meta[k] not in (None, "", [])}
    if "agents" in filter_meta and isinstance(filter_meta["agents"], str):
        filter_meta["agents"] = [filter_meta["agents"]]
    other_meta = {k: v for k, v in meta.items() if k not in META_KEYS}
    parts = _split_long(section.text)
    chunks = []
    for index, part in enumerate(parts):
        payload: dict[str, Any] = {
            "doc_id": document.doc_id,
            "title": document.title,
            "section": section.heading,
            "section_id": section.section_id,
            "citation_id": section.citation_id,
            "part": index,
            "parts": len(parts),
            "category": document.category,
            "source": source,
            "text": part,
            **filter_meta,
            "metadata": {**other_meta, **(extra or {})},
        }
        embed_text = _embed_text(document.title, section.heading, part)
        digest = content_hash(embed_text, payload)
        payload["content_hash"] = digest
        key = f"{collection}/{document.doc_id}/{section.section_id}/{index}/{digest}"
        chunks.append(Chunk(point_id=str(uuid.uuid5(_NAMESPACE, key)), embed_text=embed_text, payload=payload))
    return chunks


def document_chunks(
    document: Document, collection: str, source: str, extra: dict[str, Any] | None = None
) -> list[Chunk]:
    return [c for s in document.sections for c in section_chunks(s, document, collection, source, extra)]
