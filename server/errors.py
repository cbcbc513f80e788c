"""One error envelope for the API, and handlers that never leak stack traces to clients.

Domain code raises :class:`ApiError` (or FastAPI's ``HTTPException``) only at the edge; validation errors
become 422 with each field named (``filters.x``, ``items[0].sku``); a body that is not JSON is a 422 on the
field ``body`` with the line and column (FastAPI's own status for it, and the one its OpenAPI documents);
anything unexpected becomes a 500 with the request id, logged in full.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from server.logs import request_id_var

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status, a machine-readable code and a message a person can act on."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The envelope: ``{"error": {code, message, details?, request_id?}, "detail": message}``."""
    body: dict[str, Any] = {"error": {"code": code, "message": message}, "detail": message}
    if details is not None:
        body["error"]["details"] = details
    request_id = request_id_var.get()
    if request_id:
        body["error"]["request_id"] = request_id
    return body


def envelope(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status)


async def send_error(
    send: Send, status: int, code: str, message: str, details: Any = None, *, close: bool = False
) -> None:
    """Answer with the envelope from ASGI middleware (before any route runs); ``close`` when the rest of the
    request body was left unread."""
    payload = json.dumps(error_body(code, message, details)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# The first element of a FastAPI validation ``loc`` says where the value came from; the rest is the field.
_SOURCES = ("body", "query", "path", "header", "cookie")


def field_name(loc: Sequence[Any]) -> str:
    """``("body", "filters", "x")`` -> ``filters.x``; list positions as ``[i]``; the source alone if no field.

    Only the leading source is dropped, so a body field that is itself called ``query`` keeps its name.
    """
    parts = list(loc)
    source = str(parts.pop(0)) if parts and parts[0] in _SOURCES else "request"
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or source


def json_position(body: Any, pos: Any) -> str:
    """`` (line L, column C)`` of character offset ``pos`` in the raw body, or '' when unknown."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str) or not isinstance(pos, int) or not 0 <= pos <= len(body):
        return ""
    line = body.count("\n", 0, pos) + 1
    column = pos - (body.rfind("\n", 0, pos) + 1) + 1
    return f" (line {line}, column {column})"


def validation_problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    """One ``{field, message, type}`` per problem; malformed JSON becomes one problem on ``body``."""
    problems = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            where = json_position(exc.body, loc[1] if len(loc) > 1 else None)
            problems.append({"field": "body", "message": f"body is not valid JSON{where}", "type": "json_invalid"})
        else:
            problems.append(
                {"field": field_name(loc), "message": err.get("msg", "invalid value"), "type": err.get("type")}
            )
    return problems


def allowed_methods(request: Request) -> list[str] | None:
    """The methods the API document lists for this path (Starlette's 405 names only the first route's); where
    several templates match (``/threads/search`` and ``/threads/{thread_id}``), the most literal one's.
    None when no documented path matches."""
    matches = []
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            matches.append((template.count("{"), sorted(method.upper() for method in operations)))
    return min(matches)[1] if matches else None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return envelope(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                409: "conflict"}.get(exc.status_code, "http_error")  # fmt: skip
        response = envelope(exc.status_code, code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        if exc.status_code == 405 and (methods := allowed_methods(request)):
            response.headers["Allow"] = ", ".join(methods)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = validation_problems(exc)
        if len(problems) == 1 and problems[0]["type"] == "json_invalid":
            return envelope(422, "validation_error", problems[0]["message"], problems)
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return envelope(422, "validation_error", f"invalid request: {summary}", problems)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return envelope(500, "internal_error", "internal error; see the server log for this request id")
