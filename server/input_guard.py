"""One validation layer for everything a client sends: JSON bodies, path and query strings.

PostgreSQL refuses some values Python accepts, and a refusal deep in a query is a 500 (or, for a value stored
and then unreadable, a poisoned search page). So before any route runs, the ``InputGuard`` middleware
(:mod:`server.middleware`) applies these rules, which refuse:

- a NUL character (``\\u0000``) anywhere: in a JSON string or object key, in the path, in a query value;
- an unpaired UTF-16 surrogate (``"\\ud800"`` in JSON: valid JSON text, but no Unicode character);
- a non-finite number (``NaN``, ``Infinity``, or a literal such as ``1e999`` that overflows to infinity);
- JSON nested deeper than ``RIMAS_MAX_JSON_DEPTH`` levels (default 32);
- a body that is not UTF-8 JSON at all.

Each refusal is a 422 in the API's error envelope naming the field (``metadata.a[2]``, ``query.thread_id``,
``path``) and what is allowed. Bodies over the size limit never get here (``BodyLimit`` runs first).
:data:`SAFE_TEXT` is the same rule for plain strings, as a pattern the OpenAPI document carries.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from server.errors import json_position

#: Text the database can store, as a JSON Schema ``pattern``: no NUL (a JSON Schema string is Unicode text,
#: so it holds no unpaired surrogate in the first place).
SAFE_TEXT = "^[^\\u0000]*$"
_UNSAFE = re.compile("[\u0000\ud800-\udfff]")


class InputProblem(ValueError):
    """A value the service refuses: ``field`` is where (``metadata.tags[0]``), ``message`` says what is allowed."""

    def __init__(self, field: str, message: str, kind: str = "invalid_input") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.kind = kind


class _NonFinite:
    """Stands in for ``NaN``/``Infinity`` while parsing, so the walk can say where it was."""

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None when it can."""
    found = _UNSAFE.search(text)
    if found is None:
        return None
    if found.group() == "\u0000":
        return "contains a NUL character (\\u0000), which is not allowed"
    return f"contains an unpaired UTF-16 surrogate (\\u{ord(found.group()):04x}), which is not a Unicode character"


def _child(field: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{field}[{key}]"
    return f"{field}.{key}" if field else key


def check_json(value: Any, max_depth: int, field: str = "") -> None:
    """Raise :class:`InputProblem` for the first value under ``value`` the database could not store."""
    stack: list[tuple[Any, str, int]] = [(value, field, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, dict | list) and depth > max_depth:
            raise InputProblem(where or "body", f"nested deeper than {max_depth} levels (RIMAS_MAX_JSON_DEPTH)")
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise InputProblem(where or "body", problem)
        elif isinstance(item, _NonFinite) or (isinstance(item, float) and not math.isfinite(item)):
            text = item.text if isinstance(item, _NonFinite) else repr(item)
            raise InputProblem(where or "body", f"{text} is not allowed; numbers must be finite")
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = text_problem(key)
                if problem:
                    shown = key.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\u0000")
                    raise InputProblem(_child(where, shown), f"this object key {problem}")
                stack.append((child, _child(where, key), depth + 1))
        elif isinstance(item, list):
            stack.extend((child, _child(where, i), depth + 1) for i, child in enumerate(item))


def parse_json_body(body: bytes, max_depth: int) -> Any:
    """The body as JSON, or :class:`InputProblem` saying why the service refuses it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputProblem("body", f"is not UTF-8 (invalid byte at offset {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_NonFinite, parse_float=_parse_float)
    except RecursionError:
        raise InputProblem("body", f"nested deeper than {max_depth} levels (RIMAS_MAX_JSON_DEPTH)") from None
    except json.JSONDecodeError as exc:
        raise InputProblem("body", f"body is not valid JSON{json_position(text, exc.pos)}", "json_invalid") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts
        raise InputProblem("body", f"is not valid JSON: {exc}") from None
    check_json(value, max_depth)
    return value


def check_request_line(path: str, query_string: bytes) -> None:
    """Refuse NUL characters and unpaired surrogates in the path and in query parameter names and values."""
    problem = text_problem(path)
    if problem:
        raise InputProblem("path", problem)
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8"):
        for text in (name, value):
            problem = text_problem(text)
            if problem:
                raise InputProblem(f"query.{name if text is value else '(name)'}", problem)
