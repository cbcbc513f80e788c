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
    "returns-policy", "delivery-exceptions",
}
ADDED_SECTIONS = (
    "item_issues", "cancellations", "returns", "fraud_review", "lost_parcels", "delivery_attempts",
    "international", "peak_season", "post_incident", "guaranteed_delivery", "large_refund_copies",
)


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
    metadata = {*numbers_in(policy.version), *numbers_in(policy.effective_from)}
    missing = policy_numbers(policy) - stated - {0.0} - metadata
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


def _leaf_keys(node, path: str) -> list[str]:
    """Template paths of every value under ``node``: list items by id, lists of plain values as one value."""
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in _leaf_keys(value, f"{path}.{key}")]
    if isinstance(node, list | tuple) and node and all(isinstance(item, dict) and "id" in item for item in node):
        return [k for item in node for k in _leaf_keys(item, f"{path}.{item['id']}")]
    return [path]


def test_every_added_policy_value_is_rendered_in_a_document() -> None:
    policy = load_policy()
    data = policy.model_dump(mode="python")
    used = {key for section in _all_sections(policy) for key in section.policy_keys}
    for name in ADDED_SECTIONS:
        leaves = [key for key in _leaf_keys(data[name], name) if not key.endswith(".id")]
        assert leaves and [key for key in leaves if key not in used] == [], name


@pytest.mark.parametrize(
    ("citation", "expected"),
    [
        ("policy:returns-policy#item-issues", ["7 days", "14 days", "30 days", "more than $50", "less than $20",
                                               "within 24 hours"]),
        ("policy:returns-policy#cancel-before-shipment", ["first 2 hours", "operator role", "within 24 hours",
                                                          "an approver must approve"]),
        ("policy:returns-policy#returns-window", ["within 30 days"]),
        ("policy:returns-policy#clearance-items", ["Within 14 days"]),
        ("policy:returns-policy#personalised-items", ["within 12 hours", "within 10 days"]),
        ("policy:refunds#fraud-review", ["more than 3 refund", "within 90 days", "loss prevention", "within 48 hours"]),
        ("policy:delivery-exceptions#lost-parcels", ["no new scan for 3 days", "7 days from the trace"]),
        ("policy:delivery-exceptions#lost-parcel-reshipment", ["within 24 hours", "at most 1 time"]),
        ("policy:delivery-exceptions#delivery-attempts", ["includes 2 delivery", "costs $7.50", "at most 3 times",
                                                          "waits 7 days"]),
        ("policy:delivery-exceptions#international-shipments", ["paid by the customer", "more than $2,500",
                                                                "more than 5 days"]),
        ("policy:carrier-slas#international", ["| GlobalAir Express | Flight | Canada, Mexico, United Kingdom and "
                                               "European Union | 6 days | 90% | 30 kg |",
                                               "| OceanLink Freight | Ship |", "| 25 days | 85% | 500 kg |"]),
        ("policy:carrier-slas#guaranteed-dates", ["Flight shipments", "100% of the shipping charge",
                                                  "usual wait of 2 days", "no later than 15 days",
                                                  "more than 3 guaranteed dates", "review window of 30 days"]),
        ("policy:warehouse-slas#peak-season", ["from 15 November to 15 January", "12 hours longer",
                                               "include 2 extra days", "until 31 January"]),
        ("policy:warehouse-slas#peak-returns-overflow", ["warehouse block D", "Block F is the overflow block",
                                                         "needs an approver"]),
        ("policy:escalation#post-incident-reports", ["Every resolved P1 ticket", "operations lead",
                                                     "within 72 hours", "management reviews it within 7 days"]),
        ("policy:email-templates#large-refund-copies", ["more than $100", "finance team and customer care lead"]),
    ],
)
def test_added_sections_render_the_policy_numbers(citation, expected) -> None:
    sections = {s.citation_id: s.text for s in _all_sections()}
    for fragment in expected:
        assert fragment in sections[citation], (citation, fragment)


def test_added_sections_follow_a_policy_change(policy_data) -> None:
    data = copy.deepcopy(policy_data)
    data["delivery_attempts"]["redelivery_fee_usd"] = 9.25
    data["peak_season"].update(returns_block="C", starts="20 November")
    data["international"]["carriers"][1]["transit_days"] = 28
    data["large_refund_copies"]["over_usd"] = 150
    data["fraud_review"]["window_days"] = 60
    changed = parse_policy(data)
    sections = {s.citation_id: s.text for s in _all_sections(changed)}
    assert "costs $9.25" in sections["policy:delivery-exceptions#delivery-attempts"]
    assert "warehouse block C" in sections["policy:warehouse-slas#peak-returns-overflow"]
    assert "from 20 November" in sections["policy:warehouse-slas#peak-season"]
    assert "| 28 days |" in sections["policy:carrier-slas#international"]
    assert "more than $150" in sections["policy:email-templates#large-refund-copies"]
    assert "$100" not in sections["policy:email-templates#large-refund-copies"]
    assert "within 60 days" in sections["policy:refunds#fraud-review"]
    for section in _all_sections(changed):
        assert unbacked_numbers(section.heading + "\n" + section.text, changed) == [], section.citation_id


def test_added_sections_are_cited_for_their_keys() -> None:
    assert citations_for_key("lost_parcels") == [
        "policy:delivery-exceptions#lost-parcels", "policy:delivery-exceptions#lost-parcel-reshipment"
    ]
    assert citations_for_key("peak_season.returns_block") == ["policy:warehouse-slas#peak-returns-overflow"]
    assert citations_for_key("large_refund_copies") == ["policy:email-templates#large-refund-copies"]
    assert "policy:carrier-slas#international" in citations_for_key("international.carriers")
