"""KnowledgeBase against Qdrant local mode: idempotent ingestion, cited hybrid search, filters, cases."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from qdrant_client import QdrantClient

from rag.bootstrap import start_knowledge_base
from rag.policy import parse_policy
from rag.service import KnowledgeBase, KnowledgeBaseError, citation_label
from rag.store import EmbedderMismatchError

KEY_QUESTION = "can a road shipment over 4 kg be upgraded to air?"


def test_start_ingests_once_then_nothing_new(tmp_path, embedder) -> None:
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    kb = KnowledgeBase(client, embedder)
    first = kb.ingest_policy_documents()
    assert first.added > 40 and first.unchanged == 0 and first.removed == 0
    sizes = kb.collection_sizes()
    client.close()
    # a second start: new process-like client on the same folder
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    kb = KnowledgeBase(client, embedder)
    second = kb.ingest_policy_documents()
    assert (second.added, second.removed, second.unchanged) == (0, 0, first.added)
    assert kb.collection_sizes() == sizes == {"policies": first.added, "cases": 0}
    client.close()


def test_start_up_helper_ingests_on_an_empty_store_only(tmp_path) -> None:
    kb, first = start_knowledge_base(path=tmp_path / "store")
    assert first is not None and first.added == kb.collection_sizes()["policies"] > 0
    kb.client.close()
    kb, second = start_knowledge_base(path=tmp_path / "store")
    assert second is not None and second.added == 0 and second.unchanged == first.added
    assert kb.search(KEY_QUESTION, k=1)[0].citation_id == "policy:shipping#upgrades"
    kb.client.close()


def test_policy_change_replaces_only_changed_sections(kb, embedder, policy_data) -> None:
    first = kb.ingest_policy_documents()
    data = copy.deepcopy(policy_data)
    data["communication"]["sms_max_chars"] = 140
    changed = KnowledgeBase(kb.client, embedder, policy=parse_policy(data))
    report = changed.ingest_policy_documents()
    # the SMS limit is stated in the message-length section and the SMS template
    assert (report.added, report.removed) == (2, 2)
    assert report.unchanged == first.added - 2
    hits = changed.search("How long can an SMS be?", k=10, filters={"doc_id": "communication"}, gate=False)
    [length] = [h for h in hits if h.citation_id == "policy:communication#message-length"]
    assert "SMS: at most 140 characters" in length.text


def test_key_question_is_answered_by_the_shipping_section(ingested_kb) -> None:
    hits = ingested_kb.search(KEY_QUESTION, k=3)
    top = hits[0]
    assert top.citation_id == "policy:shipping#upgrades"
    assert (top.doc_id, top.title, top.section) == ("shipping", "Shipping policy", "Mode upgrades for delayed orders")
    assert "weighs more than 4 kg" in top.text and 0 < top.score <= 1
    assert citation_label(top) == "[policy:shipping#upgrades] Shipping policy - Mode upgrades for delayed orders"
    assert top.metadata["category"] == "shipping"


@pytest.mark.parametrize(
    "question",
    ["What is the capital of France?", "Who painted the Mona Lisa?", "How do I bake sourdough bread?"],
)
def test_off_topic_questions_return_nothing(ingested_kb, question) -> None:
    assert ingested_kb.search(question) == []
    assert ingested_kb.search(question, gate=False)  # the raw ranking is never empty


def test_filters_narrow_the_results(ingested_kb) -> None:
    question = "Which carrier and how many days of transit?"
    hits = ingested_kb.search(question, k=10, filters={"mode": "flight"}, gate=False)
    assert hits and all(h.metadata.get("mode") in (None, "Flight") for h in hits)
    assert "policy:carrier-slas#flight" in [h.citation_id for h in hits]
    assert "policy:carrier-slas#road" not in [h.citation_id for h in hits]
    refunds = ingested_kb.search("who approves it", k=10, category="refunds", gate=False)
    assert refunds and {h.doc_id for h in refunds} <= {"refunds", "returns-policy"}
    assert all(h.metadata["category"] == "refunds" for h in refunds)
    blocks = ingested_kb.search("processing hours of the block", k=10, filters={"warehouse_block": "c"}, gate=False)
    block_sections = {h.citation_id for h in blocks if h.citation_id.startswith("policy:warehouse-slas#block-")}
    assert block_sections == {"policy:warehouse-slas#block-c"}
    agents = ingested_kb.search("what may we say", k=10, filters={"agent_type": "customer"}, gate=False)
    assert agents and all("customer" in h.metadata["agents"] for h in agents)


def test_search_modes_and_input_errors(ingested_kb) -> None:
    for mode in ("dense", "sparse", "hybrid"):
        assert ingested_kb.search(KEY_QUESTION, k=1, mode=mode)[0].citation_id == "policy:shipping#upgrades"
    with pytest.raises(KnowledgeBaseError, match="k: must be an integer from 1 to 50"):
        ingested_kb.search(KEY_QUESTION, k=0)
    with pytest.raises(KnowledgeBaseError, match="collection: 'faq' is not allowed; allowed: policies, cases"):
        ingested_kb.search(KEY_QUESTION, collection="faq")
    with pytest.raises(KnowledgeBaseError, match="filters: unknown key 'colour'"):
        ingested_kb.search(KEY_QUESTION, filters={"colour": "red"})
    with pytest.raises(KnowledgeBaseError, match="query: must be a non-empty string"):
        ingested_kb.search("   ")


def test_admin_documents_ingest_replace_and_delete(kb) -> None:
    kb.ingest_policy_documents()
    content = "## Holiday cut-off\nOrders placed in the holiday week ship after the break.\n\n## Gift wrap\nFree."
    first = kb.ingest_document(None, "Holiday shipping", content, "shipping")
    assert (first.doc_id, first.chunks, first.added) == ("holiday-shipping", 2, 2)
    assert first.citation_ids == ["policy:holiday-shipping#holiday-cut-off", "policy:holiday-shipping#gift-wrap"]
    again = kb.ingest_document("holiday-shipping", "Holiday shipping", content, "shipping")
    assert (again.added, again.unchanged, again.removed) == (0, 2, 0)
    new_content = content.replace("Free.", "Costs extra.")
    edited = kb.ingest_document("holiday-shipping", "Holiday shipping", new_content, "shipping")
    assert (edited.added, edited.unchanged, edited.removed) == (1, 1, 1)
    hits = kb.search("when do holiday week orders ship", k=3)
    assert hits[0].citation_id == "policy:holiday-shipping#holiday-cut-off"
    assert kb.delete_document("holiday-shipping") == 2
    assert kb.delete_document("holiday-shipping") == 0
    assert kb.search("when do holiday week orders ship", k=3, filters={"doc_id": "holiday-shipping"}) == []


def test_admin_document_rules(kb) -> None:
    kb.ingest_policy_documents()
    with pytest.raises(KnowledgeBaseError, match="doc_id: 'shipping' is a packaged policy document"):
        kb.ingest_document("shipping", "Shipping", "New text", "shipping")
    with pytest.raises(KnowledgeBaseError, match="category: 'Shipping Policy' is not allowed"):
        kb.ingest_document(None, "Note", "Text", "Shipping Policy")
    with pytest.raises(KnowledgeBaseError, match="packaged policy document"):
        kb.delete_document("refunds")
    with pytest.raises(KnowledgeBaseError, match=r"category: 'returns' is not allowed; allowed: .*refunds.*case"):
        kb.ingest_document(None, "Returns", "Text", "returns")
    text = "Free shipping upgrade for delays over 11 days, within 24 hours."
    result = kb.ingest_document(None, "Quick upgrades", text, "shipping")
    assert result.chunks == 1 and len(result.warnings) == 1
    assert "(11)" in result.warnings[0]  # 24 is a policy number, 11 is not


RESOLUTION = {
    "deviation_id": "dev-0001",
    "order_id": "1234",
    "warehouse_block": "b",
    "mode_of_shipment": "road",
    "weight_in_gms": 4200,
    "delay_probability": 0.85,
    "severity": "critical",
    "summary": "Upgraded to Flight and notified the customer.",
    "actions": [
        {"agent_type": "shipment", "action": "shipping_upgrade", "amount": 22.7, "status": "executed"},
        {"agent_type": "customer", "action": "customer_notification", "detail": "delay apology email"},
    ],
    "outcome": "resolved",
    "thread_id": "thread-9",
}


def test_cases_are_kept_apart_from_policies(kb) -> None:
    kb.ingest_policy_documents()
    policies_before = kb.collection_sizes()["policies"]
    case_id = kb.add_case(RESOLUTION)
    assert case_id == "dev-0001"
    assert kb.add_case(RESOLUTION) == case_id  # recording it again replaces, never duplicates
    assert kb.collection_sizes() == {"policies": policies_before, "cases": 1}
    query = "road shipment warehouse B 4 kg high delay risk upgrade"
    [hit] = kb.search(query, collection="cases", filters={"warehouse": "B", "severity": "critical"})
    assert hit.citation_id == "case:dev-0001#resolution"
    assert "warehouse B | Road | 4.2 kg | delay probability 0.85" in hit.text
    assert hit.metadata["agents"] == ["customer", "shipment"] and hit.metadata["mode"] == "Road"
    assert hit.metadata["metadata"]["order_id"] == "1234"
    assert kb.search(query, collection="cases", filters={"warehouse": "C"}) == []
    assert all(h.collection == "policies" for h in kb.search(query, k=10))


def test_invalid_resolution_names_the_field(kb) -> None:
    with pytest.raises(ValueError, match="severity"):
        kb.add_case({**RESOLUTION, "severity": "urgent"})
    with pytest.raises(ValueError, match="deviation_id, thread_id or order_id"):
        kb.add_case({"severity": "info", "summary": "x"})


class _OtherEmbedder:
    name = "test:other"
    dim = 256

    def embed(self, texts):
        return np.zeros((len(texts), 256), dtype=np.float32)


def test_mixing_embedders_is_refused(tmp_path, embedder) -> None:
    client = QdrantClient(path=str(tmp_path / "q"))
    KnowledgeBase(client, embedder).ingest_policy_documents()
    with pytest.raises(EmbedderMismatchError) as info:
        KnowledgeBase(client, _OtherEmbedder()).ensure_collections()
    message = str(info.value)
    assert embedder.name in message and "test:other" in message and "policies" in message
    client.close()


def test_endpoint_models_validate_and_serialise(ingested_kb) -> None:
    from pydantic import ValidationError

    from rag.schemas import KnowledgeHit, KnowledgeSearchRequest, KnowledgeSearchResponse

    with pytest.raises(ValidationError) as info:
        KnowledgeSearchRequest(query=KEY_QUESTION, k=0)
    assert info.value.errors()[0]["loc"] == ("k",)
    with pytest.raises(ValidationError):
        KnowledgeSearchRequest(query=KEY_QUESTION, collection="faq")
    request = KnowledgeSearchRequest(query=KEY_QUESTION, k=2, category="shipping")
    hits = ingested_kb.search(request.query, k=request.k, category=request.category, collection=request.collection)
    body = KnowledgeSearchResponse(query=request.query, hits=[KnowledgeHit.from_hit(h) for h in hits]).model_dump()
    assert body["hits"][0]["citation_id"] == "policy:shipping#upgrades"
    assert set(body["hits"][0]) >= {"text", "score", "title", "section", "citation_id"}


def test_unknown_category_is_refused_naming_the_allowed_ones(ingested_kb) -> None:
    from rag.categories import document_categories

    assert set(document_categories()) == {
        "carrier_slas", "communication", "email_templates", "escalation", "planning", "refunds", "shipping",
        "warehouse_slas", "case",
    }  # fmt: skip
    with pytest.raises(KnowledgeBaseError, match=r"^category: 'returns' is not allowed; allowed: carrier_slas, "):
        ingested_kb.search(KEY_QUESTION, category="returns")
    with pytest.raises(KnowledgeBaseError, match=r"^filters.category: 'returns' is not allowed"):
        ingested_kb.search(KEY_QUESTION, filters={"category": ["shipping", "returns"]})
    assert ingested_kb.search(KEY_QUESTION, category="Shipping")
