"""Render policy values into document templates, and check the numbers a text states.

A template refers to policy values as ``{{ path.to.value }}`` or ``{{ path.to.value | filter }}``;
list items are addressed by their ``id`` or ``name`` (``carriers.aerolift.transit_days``,
``refunds.tiers.minor.refund_pct``) and upgrade paths as ``Road_to_Flight``. Single braces
(``{order_id}``) are left alone: they are fields filled in later by whoever sends a message.

:func:`numbers_in` and :func:`unbacked_numbers` implement the rule "a document states no number the
policy file does not".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rag.policy import Policy

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*(?:\|\s*([a-z_]+)\s*)?\}\}")
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,2}):(\d{2})(?!\d)|(?<![\w.,])\d+(?:,\d{3})*(?:\.\d+)?(?![\d])")
_DIGIT = re.compile(r"\d")


class TemplateError(ValueError):
    """A placeholder names no policy value, or uses an unknown filter."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}" if abs(value) >= 10000 else str(int(value))
    return f"{value:g}"


def _money(value: Any) -> str:
    if value is None:
        return "no limit"
    if not _is_number(value):
        raise TemplateError(f"money filter needs a number, got {value!r}")
    amount = float(value)
    return f"${amount:,.0f}" if amount.is_integer() else f"${amount:,.2f}"


def _pct(value: Any) -> str:
    if not _is_number(value):
        raise TemplateError(f"pct filter needs a number, got {value!r}")
    return f"{format_number(value)}%"


def _join(items: Iterable[Any]) -> str:
    words = [_plain(item) for item in items]
    if not words:
        return "none"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _plain(value: Any) -> str:
    if value is None:
        return "no limit"
    if _is_number(value):
        return format_number(value)
    if isinstance(value, list | tuple):
        return _join(value)
    return str(value)


def _clock(value: Any) -> str:
    if not isinstance(value, int) or not 0 <= value <= 23:
        raise TemplateError(f"clock filter needs an hour 0-23, got {value!r}")
    return f"{value:02d}:00"


def _channels(value: Any) -> str:
    if not isinstance(value, list | tuple):
        raise TemplateError(f"channels filter needs a list, got {value!r}")
    names = {"sms": "SMS", "email": "email"}
    return _join(names.get(str(v), str(v)) for v in value) if value else "no proactive message"


FILTERS: dict[str, Callable[[Any], str]] = {
    "money": _money,
    "pct": _pct,
    "list": lambda v: _join(v) if isinstance(v, list | tuple) else _plain(v),
    "words": lambda v: _plain(v).replace("_", " "),
    "clock": _clock,
    "channels": _channels,
    "upper": lambda v: _plain(v).upper(),
}


def _item_keys(item: Any) -> set[str]:
    if not isinstance(item, dict):
        return set()
    keys = {str(item[k]) for k in ("id", "name") if k in item}
    if "from_mode" in item and "to_mode" in item:
        keys.add(f"{item['from_mode']}_to_{item['to_mode']}")
    return keys


def resolve(data: dict[str, Any], path: str) -> Any:
    """Look up a dotted path in dumped policy data; list items are matched by id, name or path key."""
    current: Any = data
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list | tuple):
            matches = [item for item in current if part in _item_keys(item)]
            if not matches:
                raise TemplateError(f"{{{{ {path} }}}}: no list item {part!r} at {'.'.join(walked[:-1])}")
            current = matches[0]
        else:
            raise TemplateError(f"{{{{ {path} }}}}: the policy has no key {'.'.join(walked)}")
    return current


@dataclass
class Rendered:
    """A rendered text and the policy keys its placeholders used."""

    text: str
    keys: list[str] = field(default_factory=list)


def render(template: str, policy: Policy | dict[str, Any]) -> Rendered:
    """Replace every ``{{ path | filter }}`` with the policy value; raise on unknown paths or filters."""
    data = policy.model_dump(mode="python") if isinstance(policy, Policy) else policy
    keys: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        path, filter_name = match.group(1), match.group(2)
        value = resolve(data, path)
        if isinstance(value, dict):
            raise TemplateError(f"{{{{ {path} }}}}: names a section, not a value")
        keys.append(path)
        if filter_name is None:
            return _plain(value)
        if filter_name not in FILTERS:
            raise TemplateError(f"{{{{ {path} | {filter_name} }}}}: unknown filter; allowed: {', '.join(FILTERS)}")
        return FILTERS[filter_name](value)

    return Rendered(text=PLACEHOLDER.sub(substitute, template), keys=keys)


def numbers_in(text: str) -> list[float]:
    """Numbers a text states: ``$25,000`` -> 25000, ``3.5`` -> 3.5, ``21:00`` -> 21 (an hour)."""
    found: list[float] = []
    for match in _NUMBER.finditer(text):
        if match.group(1) is not None:
            found.append(float(match.group(1)))
            if match.group(2) != "00":
                found.append(float(match.group(2)))
        else:
            found.append(float(match.group(0).replace(",", "")))
    return found


def policy_numbers(policy: Policy) -> set[float]:
    """Every number the policy file states, including digits inside its string values."""
    values: set[float] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)
        elif _is_number(node):
            values.add(float(node))
        elif isinstance(node, str):
            values.update(numbers_in(node))

    walk(policy.model_dump(mode="python"))
    return values


def unbacked_numbers(text: str, policy: Policy) -> list[float]:
    """Numbers stated in ``text`` that appear nowhere in the policy file (sorted, unique)."""
    allowed = policy_numbers(policy)
    return sorted({n for n in numbers_in(text) if n not in allowed})


def literal_digits(template: str) -> list[str]:
    """Lines of a template holding digits outside placeholders (templates must state no numbers)."""
    offending: list[str] = []
    for line in template.splitlines():
        if _DIGIT.search(PLACEHOLDER.sub("", line)):
            offending.append(line.strip())
    return offending
