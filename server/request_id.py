"""Request ids: every answer carries ``X-Request-ID`` (the client's, up to 64 characters, or a new one), and
every log line and error body written while answering it carries the same id.

This is the outermost middleware, so refusals by the other middleware (413, 421, 422) carry the id too, and an
exception nothing else handled is answered here with the 500 envelope (logged in full, never sent).
"""

from __future__ import annotations

import logging
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import send_error
from server.logs import request_id_var

log = logging.getLogger(__name__)


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), "")
        rid = "".join(c for c in presented[:64] if c.isprintable()) or uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode("latin-1"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.exception("unhandled error", exc_info=exc)
            if started:
                raise
            await send_error(send_with_id, 500, "internal_error", "internal error; see the server log for this "
                             "request id")  # fmt: skip
        finally:
            request_id_var.reset(token)
