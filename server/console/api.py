"""The console's client of the HTTP API: the signed-in key on every call, the server's refusals as exceptions.

Calls go over loopback to this process's own listener (:func:`server.console.api_base`), through the same edge
middleware, authentication and role checks as any other client: nothing in the console reads the database itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from server.chat_cli import sse_events
from server.settings import Role

TIMEOUT = httpx.Timeout(120.0, connect=5.0)


@dataclass
class _Config:
    base: str = "http://127.0.0.1:8000"
    auth: bool = True
    loopback: bool = True


CONFIG = _Config()


def configure(base: str, *, auth: bool, loopback: bool) -> None:
    """Where the API is and whether it asks for keys (set once, when the console is mounted)."""
    CONFIG.base, CONFIG.auth, CONFIG.loopback = base, auth, loopback


class Refused(Exception):
    """The API answered an error: its status and its message (the envelope's ``error.message``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


@dataclass(frozen=True)
class Session:
    """A signed-in key: its name and role as ``GET /auth/me`` told them (the key itself stays server-side)."""

    key: str | None
    name: str
    role: Role
    includes: tuple[Role, ...] = field(default_factory=tuple)

    def can(self, role: Role) -> bool:
        """Whether this key's role includes ``role`` (to decide which controls show; the API decides the rest)."""
        return role in self.includes


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(body.get("detail") if isinstance(body, dict) else body)[:300]


_clients: dict[str, httpx.AsyncClient] = {}


def _client() -> httpx.AsyncClient:
    """The process's client of its own API (one connection pool; building a client costs tens of milliseconds)."""
    if CONFIG.base not in _clients:
        no_cookies = CookieJar(DefaultCookiePolicy(allowed_domains=[]))  # nothing one session gets reaches another
        _clients[CONFIG.base] = httpx.AsyncClient(base_url=CONFIG.base, timeout=TIMEOUT, cookies=no_cookies)
    return _clients[CONFIG.base]


def _headers(session: Session | None) -> dict[str, str]:
    return {"x-api-key": session.key} if session is not None and session.key else {}


async def call(session: Session | None, method: str, path: str, **kwargs: Any) -> Any:
    """One API call with the session's key; the JSON answer, or :class:`Refused` with the server's message."""
    response = await _client().request(method, path, headers=_headers(session), **kwargs)
    if response.status_code >= 400:
        raise Refused(response.status_code, _message(response))
    return response.json() if response.content else None


async def sign_in(key: str | None) -> Session:
    """The session of ``key`` (None with auth off: the local admin); :class:`Refused` (401) for a wrong key."""
    me = await call(Session(key, "", "viewer"), "GET", "/auth/me")
    return Session(key, str(me["name"]), me["role"], tuple(me["includes"]))


async def stream(session: Session, path: str, body: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
    """The ``(event, data)`` pairs of an SSE answer, as they arrive; :class:`Refused` when the server refuses."""
    async with _client().stream("POST", path, json=body, headers=_headers(session)) as response:
        if response.status_code >= 400:
            await response.aread()
            raise Refused(response.status_code, _message(response))
        async for item in sse_events(response):
            yield item
