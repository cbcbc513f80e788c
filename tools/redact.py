"""Redaction of personal data from what is sent to an LLM or written to a log.

:func:`redact_text` replaces email addresses, phone numbers and street addresses with ``[email]``, ``[phone]``
and ``[address]``; :func:`redact` does the same through dicts, lists and tuples, and blanks the values of keys
that name such data (``email``, ``phone``, ``address``...). Identifiers are kept: values under keys ending in
``_id`` or ``_ref`` are never touched, and order, customer, tracking and ISO-date patterns (``ORD-000123``,
``C00123``, ``HLC1234567890``, ``2026-10-31``) are not phone numbers.
"""

from __future__ import annotations

import re
from typing import Any, Final

EMAIL: Final = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# A phone number: an optional +country code, then digit groups with single separators; checked by _phone().
PHONE: Final = re.compile(r"(?<![\w+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,5}){0,4}(?![\w-])")
_ISO_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}")
_STREET_TYPES: Final = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|"
    "Parkway|Pkwy|Square|Sq|Highway|Hwy|Close|Crescent|Row|Alley|Circle|Cir"
)
STREET: Final = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?\s+(?:[A-Z][\w'-]*\.?\s+){{1,4}}(?:{_STREET_TYPES})\b\.?"
    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor)\.?\s*#?\s*\w+)?"
)
SENSITIVE_KEYS: Final = frozenset(
    {
        "email",
        "phone",
        "phone_number",
        "mobile",
        "address",
        "street",
        "street_address",
        "postal_address",
        "shipping_address",
        "billing_address",
    }
)
REPLACEMENT: Final = "[redacted]"


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    separated = text.startswith("+") or "(" in text or bool(re.search(r"\d[ .-]\d", text))
    if not 9 <= digits <= 15 or not separated or _ISO_DATE.match(text):
        return text
    return "[phone]"


def redact_text(text: str) -> str:
    """``text`` with email addresses, phone numbers and street addresses replaced."""
    text = EMAIL.sub("[email]", text)
    text = STREET.sub("[address]", text)
    return PHONE.sub(_phone, text)


def _is_id_key(key: str) -> bool:
    lowered = key.lower()
    return lowered == "id" or lowered.endswith(("_id", "_ref", "_ids", "_refs"))


def redact(value: Any, *, key: str | None = None) -> Any:
    """A copy of ``value`` (text, dict, list, tuple, or anything else as is) with personal data removed."""
    if key is not None and _is_id_key(key):
        return value
    if key is not None and key.lower() in SENSITIVE_KEYS and value not in (None, ""):
        return REPLACEMENT
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    return value
