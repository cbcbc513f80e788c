"""API docs served from this process: Swagger UI (``/docs``), ReDoc (``/redoc``) and ``/openapi.json``.

FastAPI's built-in pages load Swagger UI and ReDoc from a CDN, so they are blank offline. These pages load
the same assets from the installed ``fastapi-offline`` package under ``/docs/static/``. Every route needs
the viewer role, like the rest of the API (only ``/ok`` is open).

A browser cannot add an ``X-API-Key`` header to a page load, nor to the requests Swagger UI then makes
for ``/openapi.json`` and its assets. So on these routes only, the key may also arrive as HTTP Basic
credentials (any user name, the key as the password), and a 401 there carries a Basic challenge: the
browser asks once for the key and re-sends it with every request to the docs. The API routes keep
accepting only ``X-API-Key`` and ``Authorization: Bearer``; Swagger UI's "Authorize" button (an
``X-API-Key`` security scheme in the served document, see :mod:`server.openapi`) is how "Try it out"
requests carry the key.
"""

from __future__ import annotations

import base64
import binascii
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth import Viewer
from server.errors import ApiError
from server.openapi import served_document

OPENAPI_URL = "/openapi.json"
STATIC_PREFIX = "/docs/static"
DOC_PATHS = ("/docs", "/redoc", OPENAPI_URL)
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
BASIC_CHALLENGE = 'Basic realm="RIMAS API docs", charset="UTF-8"'



def _asset_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def _is_doc_path(path: str) -> bool:
    return path in DOC_PATHS or path.startswith(STATIC_PREFIX + "/")


def _basic_password(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep and password else None


class BrowserDocsAuth:
    """On the docs routes only: take the key from Basic credentials and answer 401 with a Basic challenge."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_doc_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = list(scope["headers"])
        names = {name for name, _ in headers}
        if b"x-api-key" not in names:
            for name, value in headers:
                if name == b"authorization" and (key := _basic_password(value.decode("latin-1"))):
                    headers = [h for h in headers if h[0] != b"authorization"] + [(b"x-api-key", key.encode())]
                    break
        scope = {**scope, "headers": headers}

        async def send_with_challenge(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                kept = [(n, v) for n, v in message.get("headers", []) if n.lower() != b"www-authenticate"]
                message = {**message, "headers": [*kept, (b"www-authenticate", BASIC_CHALLENGE.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_challenge)


def docs_router() -> APIRouter:
    """``/docs``, ``/redoc``, ``/openapi.json`` and ``/docs/static/{asset}``, each for viewers and up."""
    router = APIRouter(include_in_schema=False)

    @router.get(OPENAPI_URL)
    async def openapi(request: Request, _: Viewer) -> JSONResponse:
        return JSONResponse(served_document(request.app))

    @router.get("/docs")
    async def swagger_ui(request: Request, _: Viewer) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + OPENAPI_URL,
            title=f"{request.app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PREFIX}/favicon.png",
        )

    @router.get("/redoc")
    async def redoc(request: Request, _: Viewer) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + OPENAPI_URL,
            title=f"{request.app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_PREFIX}/favicon.png",
            with_google_fonts=False,
        )

    @router.get(STATIC_PREFIX + "/{asset}")
    async def static_asset(asset: str, _: Viewer) -> FileResponse:
        media_type = ASSETS.get(asset)
        if media_type is None:
            raise ApiError(404, "not_found", f"no docs asset {asset!r}")
        return FileResponse(_asset_dir() / asset, media_type=media_type, headers={"Cache-Control": "private"})

    return router


def install_docs(app: FastAPI) -> None:
    """Mount the docs routes and their browser-auth bridge on an app built with the built-in docs off."""
    app.include_router(docs_router())
    app.add_middleware(BrowserDocsAuth)
