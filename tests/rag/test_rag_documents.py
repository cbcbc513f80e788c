"""Policy documents agree with the policy file: rendered from it, stating no other number."""

from __future__ import annotations

import copy

import pytest

from rag.documents import citations_for_key, load_policy_documents, parse_admin_document, template_paths
from rag.policy import load_policy, parse_policy
from rag.templating import TemplateError, literal_digits, numbers_in, policy_numbers, render, unbacked_numbers

EXPECTED_DOCS = {
    "shipping", "refunds", "escalation", "communication",
    "carrier-slas", "warehouse-slas", "email-templates", "planning",
}


def _all_sections(policy=None):
    return [s for d in load_policy_documents(policy) for s in d.sections]


def test_every_document_exists_with_unique_citations() -> None:
    documents = load_policy_documents()
    assert {d.doc_id for d in documents} == EXPECTED_DOCS
    citations = [s.citation_id for d in documents for s in d.sections]
    assert len(citations) == len(set(citations))
    assert "policy:shipping#upgrades" in citations


def test_templates_hold_no_literal_numbers() -> None:
    offending = {p.name: literal_digits(p.read_text(encoding="utf-8")) for p in template_paths()}
    assert {name: lines for name, lines in offending.items() if lines} == {}


def test_rendered_documents_state_only_policy_numbers() -> None:
    policy = load_policy()
    for section in _all_sections(policy):
        assert unbacked_numbers(section.heading + "\n" + section.text, policy) == [], section.citation_id


def test_number_check_catches_a_contradiction() -> None:
    policy = load_policy()
    assert unbacked_numbers("Refunds up to $200 need an approver.", policy) == []
    assert unbacked_numbers("Refunds are auto-approved up to $450.", policy) == [450.0]
    assert literal_digits("Automation may refund up to $50.\nUp to {{ refunds.claim_window_days }} days.") == [
        "Automation may refund up to $50."
    ]
    assert numbers_in("$25,000 at 21:00, 3.5 kg, 48h") == [25000.0, 21.0, 3.5, 48.0]


def test_every_policy_number_is_stated_somewhere() -> None:
    policy = load_policy()
    stated: set[float] = set()
    for section in _all_sections(policy):
        stated.update(numbers_in(section.heading + "\n" + section.text))
    # 0 is "not allowed" in tables and the version/date digits are metadata, not rules.
    missing = policy_numbers(policy) - stated - {0.0, 1.0, 2026.0}
    assert missing == set()


def test_documents_follow_a_policy_change(policy_data) -> None:
    data = copy.deepcopy(policy_data)
    data["shipping"]["upgrade"]["paths"][0]["min_weight_kg"] = 5
    data["approval"]["amount_limits"]["refund"]["limits"]["approver"] = 180
    changed = parse_policy(data)
    sections = {s.citation_id: s.text for s in _all_sections(changed)}
    assert "weighs more than 5 kg" in sections["policy:shipping#upgrades"]
    assert "refunds up to $180" in sections["policy:refunds#approval-authority"]
    assert "$200" not in sections["policy:refunds#approval-authority"]


def test_section_metadata_and_key_citations() -> None:
    sections = {s.citation_id: s for s in _all_sections()}
    assert sections["policy:carrier-slas#flight"].metadata["mode"] == "Flight"
    assert sections["policy:warehouse-slas#block-f"].metadata["warehouse"] == "F"
    assert sections["policy:shipping#upgrades"].metadata["agents"] == ["shipment"]
    assert "policy:refunds#approval-authority" in citations_for_key("approval.amount_limits.refund")
    assert "policy:shipping#upgrades" in citations_for_key("shipping.upgrade.paths.Road_to_Flight.min_weight_kg")


def test_render_errors_name_the_placeholder() -> None:
    policy = load_policy()
    with pytest.raises(TemplateError, match=r"refunds\.nope"):
        render("{{ refunds.nope }}", policy)
    with pytest.raises(TemplateError, match="unknown filter"):
        render("{{ refunds.claim_window_days | shout }}", policy)
    assert render("{order_id} {{ carriers.aerolift.transit_days }} days", policy).text == "{order_id} 2 days"


def test_admin_document_split_at_headings() -> None:
    doc = parse_admin_document(
        "holiday-shipping", "Holiday shipping", "Intro text.\n\n## Cut-off dates\nOrder early.\n\n## Returns\nLater.",
        "shipping",
    )
    assert [s.section_id for s in doc.sections] == ["intro", "cut-off-dates", "returns"]
    assert doc.sections[1].citation_id == "policy:holiday-shipping#cut-off-dates"


def test_policy_numbers_include_strings() -> None:
    assert 2026.0 in policy_numbers(load_policy())
