"""Admission of a run: what a client may hand to a graph, checked before anything is recorded or executed.

Every client-supplied field that reaches the graph is allow-listed here, because LangGraph reads internal
keys from the same places (a ``__pregel_*`` key in ``configurable`` can answer an interrupt; a
``checkpoint_*`` key moves the run to another checkpoint):

- ``config``: only ``configurable``, ``recursion_limit``, ``tags``, ``max_concurrency`` and ``run_name``.
- ``config.configurable``: a graph that declares a config schema gets only its keys (and ``thread_id``, which
  must be the run's thread). A graph that declares none gets any key but those the runtime owns: keys starting
  with ``__``, ``checkpoint`` or ``langgraph_`` and the run's ids (``run_id``, ``assistant_id``, ``graph_id``)
  are refused by name (fork with ``checkpoint``), as LangGraph Server lets clients set free configurable keys.
- ``context``: only the fields of the graph's context schema; ``principal`` is set by the server.
- sizes: metadata, input, command and context are bounded (413 naming the field).
Refusals are :class:`~server.errors.ApiError` 422/413 naming the field and what is allowed. A context or
configurable key that does not fit the graph is a 409 ``graph_mismatch`` instead when the graph is a stored
assistant's (``mismatch=409``): the body is well-formed, and the same body fits another assistant, or this one
after a ``PATCH``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import typing
from typing import Any

import typing_extensions
from pydantic import BaseModel, TypeAdapter, ValidationError

from server.errors import ApiError
from server.runtime.schemas import RunConfig

RESERVED_PREFIXES = ("__", "checkpoint", "langgraph_")
RESERVED_KEYS = ("run_id", "assistant_id", "graph_id")
#: The configurable names a client may not choose freely, as a JSON-schema pattern (thread_id: only the run's own).
RESERVED_CONFIGURABLE = "^(?:{})|^(?:{})$".format(
    "|".join(re.escape(p) for p in RESERVED_PREFIXES), "|".join((*RESERVED_KEYS, "thread_id"))
)
RESERVED_CONTEXT = "principal"


def schema_fields(schema: Any) -> set[str] | None:
    """Field names of a dataclass, pydantic model or TypedDict type; None when it is none of those."""
    if schema is None:
        return None
    if dataclasses.is_dataclass(schema) and isinstance(schema, type):
        return {f.name for f in dataclasses.fields(schema)}
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return set(schema.model_fields)
    if typing_extensions.is_typeddict(schema):  # typing.is_typeddict misses typing_extensions' TypedDicts
        return set(typing.get_type_hints(schema))
    return None


def configurable_keys(graph: Any) -> set[str]:
    """The ``configurable`` keys a graph declares through its (deprecated) config schema; usually none."""
    return schema_fields(getattr(getattr(graph, "builder", None), "config_schema", None)) or set()


def _mismatch(status: int, message: str) -> ApiError:
    """A field that does not fit the graph: 422, or 409 when the graph is a stored assistant's (see above)."""
    return ApiError(status, "validation_error" if status == 422 else "graph_mismatch", message)


def check_config(
    config: RunConfig | None, graph: Any, thread_id: str | None, field: str = "config", mismatch: int = 422
) -> dict[str, Any]:
    """The run's (or an assistant's) ``config`` as a dict, its ``configurable`` keys checked (422 naming the
    first refused); the other keys were checked by :class:`~server.runtime.schemas.RunConfig`. ``thread_id``
    None: no thread (an assistant's config), so ``configurable.thread_id`` is refused."""
    checked = config.model_dump(exclude_none=True) if config is not None else {}
    declared = configurable_keys(graph)
    for key, value in (checked.get("configurable") or {}).items():
        where = f"{field}.configurable.{key}"
        if key.startswith(RESERVED_PREFIXES) or key in RESERVED_KEYS:
            raise ApiError(422, "validation_error", f"{where}: reserved for the runtime; fork from a checkpoint with "
                           "the run's 'checkpoint' field, and answer interrupts with 'command.resume'")  # fmt: skip
        if key == "thread_id":
            if thread_id is None or value != thread_id:
                raise ApiError(422, "validation_error", f"{where}: must be the run's thread ({thread_id}) or absent")
        elif declared and key not in declared:
            allowed = ", ".join(sorted({"thread_id", *declared}))
            raise _mismatch(mismatch, f"{where}: not a configurable key of this graph; allowed: {allowed}")
    return checked


@functools.lru_cache(maxsize=64)
def _adapter(schema: Any) -> TypeAdapter[Any] | None:
    """A validator of the context type; None for a type pydantic cannot validate (field names still are)."""
    try:
        return TypeAdapter(schema)
    except Exception:
        return None


def check_context(schema: Any, context: dict[str, Any] | None, field: str = "context", mismatch: int = 422) -> None:
    """Refuse a ``context`` with keys the graph's context schema lacks, or that it would not accept."""
    if not context:
        return
    if RESERVED_CONTEXT in context:
        raise ApiError(422, "validation_error", f"{field}.principal: set by the server from the API key; leave it out")
    fields = schema_fields(schema)
    if fields is None:
        raise _mismatch(mismatch, f"{field}: this graph takes no context; leave it out")
    unknown = sorted(set(context) - fields)
    if unknown:
        allowed = ", ".join(sorted(fields - {RESERVED_CONTEXT})) or "none"
        raise _mismatch(mismatch, f"{field}.{unknown[0]}: not a field of the graph's context; allowed: {allowed}")
    adapter = _adapter(schema)
    if adapter is None:
        return
    try:
        adapter.validate_python(context)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in (field, *problem["loc"]))
        raise _mismatch(mismatch, f"{where}: {problem['msg']}") from None


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def check_size(field: str, value: Any, limit: int, setting: str) -> None:
    """413 when ``value`` takes more than ``limit`` bytes as JSON."""
    if value is None:
        return
    size = json_size(value)
    if size > limit:
        raise ApiError(413, "payload_too_large", f"{field}: {size:,} bytes of JSON; the limit is {limit:,} ({setting})")
