"""FastAPI app factory: settings, lifespan-managed resources, routers, error handlers, request ids."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from server.console import install_console
from server.docs import install_docs
from server.errors import install_error_handlers
from server.middleware import install_middleware
from server.request_id import RequestId
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

    for router in ROUTERS:
        app.include_router(router)
    install_docs(app)
    if settings.console:
        install_console(app, settings)
    install_middleware(app, settings)
    app.add_middleware(RequestId)  # outermost: every answer, refusals included, carries the request id
    return app
