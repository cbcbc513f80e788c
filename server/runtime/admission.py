"""Admission of a run: what a client may hand to a graph, checked before anything is recorded or executed.

Every client-supplied field that reaches the graph is allow-listed here, because LangGraph reads internal
keys from the same places (a ``__pregel_*`` key in ``configurable`` can answer an interrupt; a
``checkpoint_*`` key moves the run to another checkpoint):

- ``config``: only ``configurable``, ``recursion_limit``, ``tags``, ``max_concurrency`` and ``run_name``.
- ``config.configurable``: only ``thread_id`` (it must be the run's thread) and the keys of the graph's own
  config schema. Keys starting with ``__`` or ``checkpoint`` are refused by name (fork with ``checkpoint``).
- ``context``: only the fields of the graph's context schema; ``principal`` is set by the server.
- sizes: metadata, input, command and context are bounded (413 naming the field).
Refusals are :class:`~server.errors.ApiError` 422/413 naming the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from pydantic import BaseModel

from server.errors import ApiError

CONFIG_KEYS = ("configurable", "recursion_limit", "tags", "max_concurrency", "run_name")
RESERVED_PREFIXES = ("__", "checkpoint")
RESERVED_CONTEXT = "principal"


def schema_fields(schema: Any) -> set[str] | None:
    """Field names of a dataclass, pydantic model or TypedDict type; None when it is none of those."""
    if schema is None:
        return None
    if dataclasses.is_dataclass(schema) and isinstance(schema, type):
        return {f.name for f in dataclasses.fields(schema)}
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return set(schema.model_fields)
    if typing.is_typeddict(schema):
        return set(typing.get_type_hints(schema))
    return None


def configurable_keys(graph: Any) -> set[str]:
    """The ``configurable`` keys a graph declares through its (deprecated) config schema; usually none."""
    return schema_fields(getattr(getattr(graph, "builder", None), "config_schema", None)) or set()


def check_config(config: dict[str, Any] | None, graph: Any, thread_id: str) -> dict[str, Any]:
    """The run's ``config`` with only allowed keys (422 naming any other)."""
    config = dict(config or {})
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        hint = " (set run metadata with the run's metadata field)" if unknown[0] == "metadata" else ""
        allowed = ", ".join(CONFIG_KEYS)
        raise ApiError(422, "validation_error", f"config.{unknown[0]}: not accepted; allowed: {allowed}{hint}")
    limit = config.get("recursion_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000):
        raise ApiError(422, "validation_error", "config.recursion_limit: must be an integer from 1 to 10000")
    tags = config.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise ApiError(422, "validation_error", "config.tags: must be a list of strings")
    configurable = config.get("configurable") or {}
    if not isinstance(configurable, dict):
        raise ApiError(422, "validation_error", "config.configurable: must be an object")
    declared = configurable_keys(graph)
    for key, value in configurable.items():
        where = f"config.configurable.{key}"
        if key.startswith(RESERVED_PREFIXES):
            raise ApiError(422, "validation_error", f"{where}: reserved for the runtime; fork from a checkpoint with "
                           "the run's 'checkpoint' field, and answer interrupts with 'command.resume'")  # fmt: skip
        if key == "thread_id":
            if value != thread_id:
                raise ApiError(422, "validation_error", f"{where}: must be the run's thread ({thread_id}) or absent")
        elif key not in declared:
            allowed = ", ".join(sorted({"thread_id", *declared}))
            raise ApiError(422, "validation_error", f"{where}: not a configurable key of this graph; allowed: "
                           f"{allowed}")  # fmt: skip
    return config


def check_context(schema: Any, context: dict[str, Any] | None) -> None:
    """Refuse a ``context`` with keys the graph's context schema lacks, or that it would not accept."""
    if not context:
        return
    if RESERVED_CONTEXT in context:
        raise ApiError(422, "validation_error", "context.principal: set by the server from the API key; leave it out")
    fields = schema_fields(schema)
    if fields is None:
        raise ApiError(422, "validation_error", "context: this graph takes no context; leave it out")
    unknown = sorted(set(context) - fields)
    if unknown:
        allowed = ", ".join(sorted(fields - {RESERVED_CONTEXT})) or "none"
        raise ApiError(422, "validation_error", f"context.{unknown[0]}: not a field of the graph's context; "
                       f"allowed: {allowed}")  # fmt: skip
    try:
        if isinstance(schema, type) and (dataclasses.is_dataclass(schema) or issubclass(schema, BaseModel)):
            schema(**context)
    except (TypeError, ValueError) as exc:
        raise ApiError(422, "validation_error", f"context: {exc}") from exc


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def check_size(field: str, value: Any, limit: int, setting: str) -> None:
    """413 when ``value`` takes more than ``limit`` bytes as JSON."""
    if value is None:
        return
    size = json_size(value)
    if size > limit:
        raise ApiError(413, "payload_too_large", f"{field}: {size:,} bytes of JSON; the limit is {limit:,} ({setting})")
