"""Number grounding: an LLM's text may state only numbers its facts hold.

:func:`ungrounded` lists the numbers of a text that are not in the facts, as given, as a percentage of a fraction,
or rounded to 0-2 decimals; an LLM policy whose text states one falls back to its template.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")


def _numbers(value: Any) -> Iterable[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, str):
        for token in NUMBER.findall(value):
            yield float(token.replace(",", ""))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _numbers(item)


def ungrounded(text: str, known: Any) -> list[str]:
    """The numbers in ``text`` that are not in ``known`` (as given, as a percentage of a fraction, or rounded)."""
    allowed: set[float] = set()
    for value in _numbers(known):
        for shown in (value, value * 100):
            allowed |= {round(shown, 2), round(shown, 1), float(round(shown))}
    missing = []
    for token in NUMBER.findall(text):
        value = float(token.replace(",", ""))
        if round(value, 2) not in allowed:
            missing.append(token)
    return missing
