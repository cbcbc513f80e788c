"""Knowledge tools over a real knowledge base (Qdrant local mode, the packaged embedder): policy passages and
past cases with citation ids, the lock held, no knowledge base = no passages."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest
from qdrant_client import QdrantClient

from rag.embeddings import load_static_embedder
from rag.service import KnowledgeBase, KnowledgeBaseError
from tools import deps as tool_deps
from tools.deps import ToolDeps
from tools.knowledge import search_cases, search_policies


@pytest.fixture(scope="module")
def knowledge_base() -> Iterator[KnowledgeBase]:
    client = QdrantClient(":memory:")
    kb = KnowledgeBase(client, load_static_embedder())
    kb.ingest_policy_documents()
    kb.add_case(
        {
            "deviation_id": "dev-1",
            "order_id": "ORD-1",
            "warehouse_block": "B",
            "mode_of_shipment": "Road",
            "weight_in_gms": 5200,
            "delay_probability": 0.86,
            "severity": "critical",
            "summary": "Road parcel upgraded to Flight, customer notified by email",
            "actions": [{"agent_type": "shipment", "action": "upgrade_shipping_mode", "amount": 26.2}],
        }
    )
    yield kb
    client.close()


@pytest.fixture
def with_knowledge(tools: ToolDeps, knowledge_base: KnowledgeBase) -> Iterator[ToolDeps]:
    deps = dataclasses.replace(tools, knowledge=knowledge_base)
    tool_deps.install(deps)
    yield deps
    tool_deps.install(tools)


async def test_policy_passages_carry_citation_ids(with_knowledge) -> None:
    passages = await search_policies("refund tiers for an order delivered days late", k=4)
    assert passages and all(p.citation.startswith("policy:") for p in passages)
    assert any(p.citation.startswith("policy:refunds#") for p in passages)
    assert passages[0].label.startswith(f"[{passages[0].citation}]") and passages[0].text
    refunds_only = await search_policies("how much compensation", category="refunds", k=3)
    assert refunds_only and all(p.citation.startswith("policy:refunds#") for p in refunds_only)


async def test_cases_are_searched_apart(with_knowledge) -> None:
    cases = await search_cases("critical delay of a heavy road parcel in warehouse B", k=3)
    assert cases and all(c.collection == "cases" and c.citation.startswith("case:") for c in cases)


async def test_concurrent_searches_share_the_lock(with_knowledge) -> None:
    results = await asyncio.gather(*(search_policies("apology limit per customer") for _ in range(6)))
    assert all(r and r[0].citation == results[0][0].citation for r in results)


async def test_bad_input_names_the_field(with_knowledge) -> None:
    with pytest.raises(KnowledgeBaseError, match="category"):
        await search_policies("refunds", category="gossip")
    with pytest.raises(KnowledgeBaseError, match="query"):
        await search_policies("  ")


async def test_no_knowledge_base_no_passages(tools) -> None:
    assert tools.knowledge is None
    assert await search_policies("refund tiers") == [] and await search_cases("late parcel") == []
