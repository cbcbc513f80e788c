"""Knowledge tools: policy passages and similar past cases, each with the citation id a proposal cites.

Both search the process's knowledge base (``tools.deps.current().knowledge``) in a worker thread, holding
``knowledge_lock`` (Qdrant's local mode is not thread-safe). Without a knowledge base (a process started without
Qdrant) they return no passages and log it once, so the deterministic policies still decide from the policy file.
Bad input (an empty query, an unknown category) raises the knowledge base's error, which names the field.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from rag.service import CASES, POLICIES, Hit, citation_label
from tools.deps import current

log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True)
class Passage:
    """One retrieved passage: what it says, where it comes from and how to cite it."""

    citation: str  # the citation id, e.g. policy:refunds#compensation-tiers (cases: case:<case id>#...)
    label: str  # "[policy:refunds#compensation-tiers] Refund and compensation policy - Compensation tiers ..."
    title: str
    section: str
    text: str
    score: float
    collection: str


def _passage(hit: Hit) -> Passage:
    return Passage(hit.citation_id, citation_label(hit), hit.title, hit.section, hit.text, hit.score, hit.collection)


async def _search(query: str, collection: str, k: int, category: str | None) -> list[Passage]:
    deps = current()
    if deps.knowledge is None:
        if collection not in _warned:
            _warned.add(collection)
            log.warning("no knowledge base in this process: %s searches return no passages", collection)
        return []
    kb = deps.knowledge
    async with deps.knowledge_lock:
        hits = await asyncio.to_thread(kb.search, query, k, category, collection)
    return [_passage(hit) for hit in hits]


async def search_policies(query: str, category: str | None = None, k: int = 4) -> list[Passage]:
    """The policy passages best matching ``query`` (optionally of one category: refunds, shipping ...)."""
    return await _search(query, POLICIES, k, category)


async def search_cases(query: str, k: int = 3) -> list[Passage]:
    """Past resolutions of similar deviations (never cited as policy)."""
    return await _search(query, CASES, k, None)
