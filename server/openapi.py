"""The OpenAPI document as the server behaves: its errors, its input rules, and the assistants it serves.

FastAPI's generated document describes every 422 with its own error shape and lists no other error. The
served document (``GET /openapi.json``) is FastAPI's, rewritten so a generated client reads answers right:

- **Errors.** Every error is the envelope :class:`ErrorEnvelope`. Each operation lists the codes it can
  answer: 401/403 (every route but ``/ok``), 404 (a resource in the path), 413 (a body), 422 (any input),
  500 and 503, 421 with auth off, and what routes declare with :func:`errors` (409 mostly).
- **Input rules.** The :mod:`server.input_guard` rules as schema: every free-form value (metadata, input,
  ``command``, documents' metadata) is a :data:`JSON_VALUE` (no NUL, no unpaired surrogate), and every
  plain string carries the :data:`~server.input_guard.SAFE_TEXT` pattern.
- **Assistants.** A run's body depends on its assistant: the ``context`` fields, the nodes
  ``interrupt_before``/``interrupt_after`` may name and the ``configurable`` keys are each graph's own. So
  ``RunCreate`` is documented as one variant per served assistant, keyed by a constant ``assistant_id``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from server.input_guard import SAFE_TEXT
from server.runtime.admission import RESERVED_CONFIGURABLE, configurable_keys
from server.runtime.schemas import UUID_PATTERN

REF = "#/components/schemas/"
JSON_VALUE = "JsonValue"

API_KEY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "X-API-Key",
    "description": "An API key from RIMAS_API_KEYS (`Authorization: Bearer <key>` works too). "
    "Every endpoint but /ok needs one when keys are configured.",
}

DESCRIPTIONS = {
    400: "Bad request",
    401: "No API key, or an unknown one",
    403: "The key's role (or, for approvals, its amount authority) does not allow this",
    404: "Not found: a resource named in the path does not exist",
    408: "The request's headers or body did not arrive in time",
    409: "Conflict with the resource's current state (busy, waiting for an approval, already exists...)",
    413: "The body, or a field of it, is larger than the configured limit",
    421: "Auth is off: only loopback clients addressing a loopback host are served",
    422: "Invalid input: each problem names the field and what is allowed",
    500: "Internal error (details in the server log, under the request id)",
    503: "Unavailable: starting, shutting down, or a required dependency is down",
}


class Problem(BaseModel):
    """One invalid field."""

    field: str = Field(description="Where: 'metadata.tags[0]', 'query.limit', 'body', 'path'.")
    message: str = Field(description="What is wrong and what is allowed.")
    type: str | None = Field(None, description="A machine-readable kind ('missing', 'invalid_input', ...).")


class ErrorInfo(BaseModel):
    code: str = Field(description="Machine-readable: validation_error, not_found, conflict, forbidden, ...")
    message: str = Field(description="What went wrong, for a person.")
    details: list[Problem] | None = Field(None, description="For 422: one entry per invalid field.")
    request_id: str | None = Field(None, description="Also in the X-Request-ID header and the server log.")


class ErrorEnvelope(BaseModel):
    """Every error answer."""

    error: ErrorInfo
    detail: str = Field(description="The message again (where LangGraph clients read it).")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the error codes it answers beyond those every route documents."""
    return {code: {"model": ErrorEnvelope, "description": DESCRIPTIONS[code]} for code in codes}


def json_value_schema(max_depth: int) -> dict[str, Any]:
    ref = {"$ref": REF + JSON_VALUE}
    return {
        "title": "JSON value",
        "description": "Any JSON value the database can store: strings and keys without NUL characters or "
        f"unpaired surrogates, finite numbers, objects and arrays nested at most {max_depth} levels "
        "(RIMAS_MAX_JSON_DEPTH).",
        "anyOf": [
            {"type": "string", "pattern": SAFE_TEXT},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": ref},
            {"type": "object", "additionalProperties": ref, "propertyNames": {"pattern": SAFE_TEXT}},
        ],
    }


# -- rewriting FastAPI's document ------------------------------------------------------------------------

_STRUCTURE = {"type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const", "not", "properties", "items"}


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema object under ``node`` (dicts in dicts and lists)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _tighten(schema: dict[str, Any]) -> None:
    """Put the input guard's rules into one schema object (in place)."""
    if schema.get("type") == "string" and not {"pattern", "enum", "const", "format"} & set(schema):
        schema["pattern"] = SAFE_TEXT
    if schema.get("type") == "object":
        extra = schema.get("additionalProperties")
        if extra is None or extra is True or extra == {}:
            schema["additionalProperties"] = {"$ref": REF + JSON_VALUE}
        schema.setdefault("propertyNames", {"pattern": SAFE_TEXT})


def _free_form(schema: Any) -> bool:
    return isinstance(schema, dict) and not _STRUCTURE & set(schema)


def _replace_any(node: Any) -> None:
    """A schema that says nothing (pydantic's ``Any``) becomes a reference to :data:`JSON_VALUE`."""
    for schema in list(_walk(node)):
        for key in ("items", "additionalProperties"):
            if _free_form(schema.get(key)) and schema.get(key) is not True:
                schema[key] = {"$ref": REF + JSON_VALUE, **schema[key]}
        for key in ("properties", "$defs"):
            for name, sub in (schema.get(key) or {}).items():
                if _free_form(sub):
                    schema[key][name] = {"$ref": REF + JSON_VALUE, **sub}
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                schema[key] = [{"$ref": REF + JSON_VALUE} if _free_form(s) else s for s in schema[key]]


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def _error_response(code: int) -> dict[str, Any]:
    return {"description": DESCRIPTIONS[code],
            "content": {"application/json": {"schema": {"$ref": REF + "ErrorEnvelope"}}}}  # fmt: skip


def _document_errors(doc: dict[str, Any], auth_enabled: bool) -> None:
    for _, _, operation in _operations(doc):
        responses = operation.setdefault("responses", {})
        responses.pop("422", None)  # FastAPI's, with its own error shape
        params = operation.get("parameters") or []
        codes = {500, 503}
        if operation.get("security") != []:
            codes |= {401, 403}
        if params or "requestBody" in operation:
            codes.add(422)
        if "requestBody" in operation:
            codes |= {408, 413}
        if any(p.get("in") == "path" for p in params):
            codes.add(404)
        if not auth_enabled:
            codes.add(421)
        for code in sorted(codes):
            responses.setdefault(str(code), _error_response(code))


def _strip_validation_components(doc: dict[str, Any]) -> None:
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def build_document(app: FastAPI, *, auth_enabled: bool, max_depth: int) -> dict[str, Any]:
    """FastAPI's document for ``app``, rewritten as described in the module docstring (assistants aside)."""
    doc = copy.deepcopy(app.openapi())
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (Problem, ErrorInfo, ErrorEnvelope):
        schemas[model.__name__] = model.model_json_schema(ref_template=REF + "{model}")
    _strip_validation_components(doc)
    _document_errors(doc, auth_enabled)
    inputs: list[Any] = [schemas]
    for _, _, operation in _operations(doc):
        inputs.append(operation.get("parameters") or [])
        inputs.append(operation.get("requestBody") or {})
    for node in inputs:
        _replace_any(node)
        for schema in _walk(node):
            _tighten(schema)
    schemas[JSON_VALUE] = json_value_schema(max_depth)
    components["securitySchemes"] = {**components.get("securitySchemes", {}), "ApiKey": API_KEY_SCHEME}
    doc.setdefault("security", [{"ApiKey": []}])
    return doc


# -- per-assistant run bodies ----------------------------------------------------------------------------


def _hoist_defs(schema: dict[str, Any], prefix: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` moved to components (as ``prefix + name``) and its refs rewritten."""
    schema = copy.deepcopy(schema)
    defs = schema.pop("$defs", None) or {}
    for node in _walk([schema, defs]):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = REF + prefix + ref.removeprefix("#/$defs/")
    for name, sub in defs.items():
        schemas[prefix + name] = sub
    return schema


def _context_variant(context_schema: dict[str, Any] | None, prefix: str, schemas: dict[str, Any]) -> dict[str, Any]:
    empty = {"type": "object", "maxProperties": 0}
    if not context_schema or not context_schema.get("properties"):
        return {"anyOf": [empty, {"type": "null"}], "description": "This assistant takes no context."}
    hoisted = _hoist_defs(context_schema, prefix, schemas)
    properties = {k: v for k, v in hoisted.get("properties", {}).items() if k != "principal"}
    if not properties:
        return {"anyOf": [empty, {"type": "null"}], "description": "This assistant takes no context."}
    required = [k for k in hoisted.get("required", []) if k in properties]
    context = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        context["required"] = required
    for schema in _walk(context):
        _tighten(schema)
    return {"anyOf": [context, {"type": "null"}], "description": "The assistant's context (run settings)."}


def _config_variant(run_config: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """``RunConfig`` whose ``configurable`` allows the graph's declared keys only, or, for a graph declaring
    none, any key but the runtime's own (see :mod:`server.runtime.admission`)."""
    config = copy.deepcopy(run_config)
    declared = sorted(keys)
    configurable: dict[str, Any] = {"type": "object"}
    if declared:
        configurable |= {
            "properties": {key: {"$ref": REF + JSON_VALUE} for key in declared},
            "additionalProperties": False,
            "description": "The keys of the graph's config schema.",
        }
    else:
        configurable |= {
            "additionalProperties": {"$ref": REF + JSON_VALUE},
            "propertyNames": {"not": {"pattern": RESERVED_CONFIGURABLE}},
            "description": "Any key but the runtime's own (thread_id may only repeat the run's thread).",
        }  # fmt: skip
    config["properties"]["configurable"] = {"anyOf": [configurable, {"type": "null"}]}
    return {"anyOf": [config, {"type": "null"}]}


RUN_BODIES = ("RunCreate", "StatelessRunCreate", "CronCreate")  # bodies naming an assistant and its run's input


def _for_graph(base: dict[str, Any], title: str, assistant: Any, key: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """``base`` for one served graph: ``key`` names its system assistant (or graph), and ``context`` and
    ``config.configurable`` take what that graph takes."""
    variant = copy.deepcopy(base)
    name = assistant.assistant_id
    variant["title"] = f"{title} for {name}"
    props = variant["properties"]
    props[key] = {"const": name, "description": f"The {'graph' if key == 'graph_id' else 'assistant'} '{name}'."}
    props["context"] = _context_variant(assistant.schemas().get("context_schema"), f"{name}__", schemas)
    if "RunConfig" in schemas:
        props["config"] = _config_variant(schemas["RunConfig"], configurable_keys(assistant.graph))
    return variant


def _per_assistant(base: dict[str, Any], title: str, assistants: list[Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """``base`` as one variant per served graph (its system assistant: that graph's context and configurable
    keys), and one for the assistants created through the API (a UUID; its graph checks the rest, 409 on a
    misfit, as the document cannot name a created assistant's graph)."""
    variants = [_for_graph(base, title, assistant, "assistant_id", schemas) for assistant in assistants]
    created = copy.deepcopy(base)
    created["title"] = f"{title} for a created assistant"
    created["properties"]["assistant_id"] = {"type": "string", "pattern": UUID_PATTERN,
                                             "description": "An assistant created with POST /assistants."}  # fmt: skip
    variants.append(created)
    return {"title": title, "description": base.get("description", "") + " One variant per served assistant.",
            "oneOf": variants}  # fmt: skip


def add_assistants(doc: dict[str, Any], assistants: Iterable[Any]) -> dict[str, Any]:
    """A copy of ``doc`` whose run bodies (``RunCreate``, ``StatelessRunCreate``, ``CronCreate``) are one
    variant per served graph and one for created assistants, whose ``AssistantCreate`` is one variant per graph,
    and whose ``graph_id`` fields list the graphs."""
    doc = copy.deepcopy(doc)
    schemas = doc["components"]["schemas"]
    served = list(assistants)
    for name in RUN_BODIES:
        base = schemas.get(name)
        if base is None:
            continue
        schemas[f"{name}Base"] = base
        schemas[name] = _per_assistant(base, name, served, schemas)
    graphs = {"enum": [a.assistant_id for a in served], "description": "A graph of langgraph.json."}
    if "AssistantPatch" in schemas:
        schemas["AssistantPatch"]["properties"]["graph_id"] = {"anyOf": [graphs, {"type": "null"}]}
    base = schemas.get("AssistantCreate")
    if base is not None and served:
        schemas["AssistantCreateBase"] = base
        schemas["AssistantCreate"] = {
            "title": "AssistantCreate", "description": base.get("description", "") + " One variant per graph.",
            "oneOf": [_for_graph(base, "AssistantCreate", assistant, "graph_id", schemas) for assistant in served],
        }  # fmt: skip
    return doc


def webhook_rule(hosts: Iterable[str]) -> dict[str, Any]:
    """``RunCreate.webhook`` as the server checks it: null when no host is allowed, else a URL on one of them."""
    alternatives = [
        r"(?:[a-z0-9-]+\.)+" + re.escape(host[2:]) if host.startswith("*.") else re.escape(host) for host in hosts
    ]
    if not alternatives:
        return {"type": "null", "description": "Webhooks are off (RIMAS_WEBHOOK_ALLOWED_HOSTS is empty)."}
    pattern = rf"^https?://(?:{'|'.join(alternatives)})(?::[0-9]{{1,5}})?(?:/[^\s#]*)?$"
    return {"anyOf": [{"type": "string", "maxLength": 2000, "pattern": pattern}, {"type": "null"}],
            "description": "POSTed the run and its final values when it ends (RIMAS_WEBHOOK_ALLOWED_HOSTS)."}


def served_document(app: FastAPI) -> dict[str, Any]:
    """What ``GET /openapi.json`` answers: built once per app (the assistants are fixed once it started)."""
    runtime = getattr(getattr(app.state, "resources", None), "runtime", None)
    cached: dict[str, Any] | None = getattr(app.state, "openapi_document", None)
    if cached is not None and (runtime is None or getattr(app.state, "openapi_has_assistants", False)):
        return cached
    settings = app.state.settings
    doc = build_document(app, auth_enabled=settings.auth_enabled, max_depth=settings.max_json_depth)
    if runtime is not None:
        doc = add_assistants(doc, runtime.registry.values())
    for schema in doc["components"]["schemas"].values():
        for variant in [schema, *schema.get("oneOf", [])]:
            if "webhook" in variant.get("properties", {}):
                variant["properties"]["webhook"] = webhook_rule(settings.webhook_hosts)
    app.state.openapi_document = doc
    app.state.openapi_has_assistants = runtime is not None
    return doc
