"""Turn graph values (LangChain messages, pydantic models, dataclasses, interrupts) into plain JSON.

The wire format follows LangGraph Server: messages are their ``model_dump()`` (``type``, ``content``, ``id``,
...), interrupts are ``{"value", "id"}``, anything else that JSON cannot hold becomes its string form.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.types import Interrupt
from pydantic import BaseModel


def to_jsonable(value: Any) -> Any:
    """A JSON-compatible copy of ``value`` (dicts, lists, str, numbers, bools, None)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Interrupt):
        return {"value": to_jsonable(value.value), "id": value.id}
    if isinstance(value, BaseMessage):
        return to_jsonable(value.model_dump())
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (through :func:`to_jsonable`)."""
    return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)
