"""API-key authentication with ordered roles: viewer < operator < approver < admin.

Keys come from ``RIMAS_API_KEYS`` (``name:key:role,...``; the name is who audit trails record) and are sent
as ``X-API-Key`` or ``Authorization: Bearer``. With no keys configured auth is off (everyone is a local
admin) and the server only serves loopback.
Endpoints declare the least role they need with the dependency aliases below.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from server.settings import ROLES, Role, Settings, get_settings

ROLE_RANK: dict[Role, int] = {role: rank for rank, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a stable id (never the key itself) and a role."""

    id: str
    role: Role

    def has(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(request: Request, settings: Settings) -> Principal:
    keys = settings.api_key_roles()
    if not keys:
        return Principal(id="local", role="admin")
    presented = _presented_key(request)
    if presented is None:
        raise HTTPException(401, "missing API key: send X-API-Key or Authorization: Bearer <key>",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    found = None
    for key, identity in keys.items():  # compare against every key, so timing does not tell which matched
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = identity
    if found is not None:
        return Principal(id=found.name, role=found.role)
    raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})


def require(role: Role):
    """Dependency that authenticates the caller and demands at least ``role`` (a coroutine: FastAPI would run
    a plain function in its thread pool, a thread hop per request for a few dictionary look-ups)."""

    async def dependency(request: Request) -> Principal:
        principal = authenticate(request, get_settings_from(request))
        if not principal.has(role):
            raise HTTPException(403, f"this endpoint needs the {role} role; your key has {principal.role}")
        return principal

    return dependency


def get_settings_from(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Approver = Annotated[Principal, Depends(require("approver"))]
Admin = Annotated[Principal, Depends(require("admin"))]
