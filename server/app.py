"""FastAPI app factory: settings, lifespan-managed resources, routers, error handlers, request ids."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI, Request, Response

from server.docs import install_docs
from server.errors import envelope, install_error_handlers
from server.logs import request_id_var
from server.middleware import install_middleware
from server.resources import Resources
from server.routes import ROUTERS
from server.settings import Settings, get_settings, is_loopback

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API. Resources open on start-up and close on shutdown (SIGTERM included).

    With auth off (no ``RIMAS_API_KEYS``) the app refuses a non-loopback ``RIMAS_HOST`` and answers only
    loopback peers addressing it by a loopback name (see :mod:`server.middleware`)."""
    settings = settings or get_settings()
    if not settings.auth_enabled and not is_loopback(settings.host):
        raise ValueError(
            f"RIMAS_HOST={settings.host} is not a loopback address and auth is off: set RIMAS_API_KEYS "
            "(name:key:role,...) to serve the network, or bind 127.0.0.1"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.auth_enabled:
            log.warning("auth is off: no RIMAS_API_KEYS configured; serve on loopback only")
        app.state.resources = await Resources.open(settings)
        try:
            yield
        finally:
            await app.state.resources.close()

    app = FastAPI(
        title="RIMAS",
        summary="Retail Intelligence Multi-Agent Service",
        version=version("rimas"),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        token = request_id_var.set(rid[:64])
        try:
            response = await call_next(request)
        except Exception as exc:  # answered here so the envelope still carries the request id
            log.exception("unhandled error", exc_info=exc)
            response = envelope(500, "internal_error", "internal error; see the server log for this request id")
        finally:
            request_id_var.reset(token)
        response.headers["X-Request-ID"] = rid[:64]
        return response

    for router in ROUTERS:
        app.include_router(router)
    install_docs(app)
    install_middleware(app, settings)
    return app
