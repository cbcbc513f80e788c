"""Redaction of emails, phone numbers and street addresses, with every kind of identifier kept."""

from __future__ import annotations

import pytest

from tools.redact import REPLACEMENT, redact, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to ava.harper.17@example.com today", "write to [email] today"),
        ("call +1 555-123-4567 now", "call [phone] now"),
        ("call (555) 123-4567", "call [phone]"),
        ("mobile 555.123.4567.", "mobile [phone]."),
        ("UK: +44 20 7946 0958", "UK: [phone]"),
        ("at 221B Baker Street, London", "at [address], London"),
        ("ship to 1600 Pennsylvania Avenue NW", "ship to [address] NW"),
        ("12 Rue Victor Hugo Road apt", "[address] apt"),
        ("42 Elm St. Apt 5 please", "[address] please"),
    ],
)
def test_personal_data_is_replaced(text, expected) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order ORD-000123 of customer C00123",
        "tracking HLC1234567890 and order 17",
        "promised 2026-10-31, shipped 2026-10-28",
        "refund 1,234.56 USD on 3 orders",
        "5 Road shipments and 2 Flight parcels weigh 4200 g",
        "thread 7f3c2a1e-9b1d-4c2e-8f00-1234567890ab",
        "delay probability 0.85 for warehouse B",
    ],
)
def test_ids_and_numbers_are_kept(text) -> None:
    assert redact_text(text) == text


def test_nested_values() -> None:
    data = {
        "order_id": "ORD-000123",
        "customer_ref": "5551234567",
        "email": "a@b.io",
        "customer": {"phone": "+1 555 123 4567", "note": "reach me at a.b@c.org or 555-123-4567"},
        "history": [("12 Main Street", 3)],
        "amount": 12.5,
        "address": None,
    }
    clean = redact(data)
    assert clean["order_id"] == "ORD-000123" and clean["customer_ref"] == "5551234567"
    assert clean["email"] == REPLACEMENT and clean["customer"]["phone"] == REPLACEMENT
    assert clean["customer"]["note"] == "reach me at [email] or [phone]"
    assert clean["history"] == [("[address]", 3)] and clean["amount"] == 12.5 and clean["address"] is None
    assert data["email"] == "a@b.io"  # the input is not changed
