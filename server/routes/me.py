"""``GET /auth/me``: who the presented key is, for a client that decides what to show (the console's sign-in)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from server.auth import ROLE_RANK, Viewer
from server.deps import SettingsDep
from server.settings import Role

router = APIRouter(tags=["auth"])


class Me(BaseModel):
    """The caller: its key's name (never the key), its role, the roles that role includes, and whether auth is on
    (off: everyone on loopback is the local admin)."""

    name: str
    role: Role
    includes: list[Role]
    auth: Literal["on", "off"]


@router.get("/auth/me", summary="The caller's key name and role")
async def me(principal: Viewer, settings: SettingsDep) -> Me:
    """Any valid key (viewer and up); a missing or unknown key gets 401 like every other route."""
    return Me(name=principal.id, role=principal.role,
              includes=[r for r, rank in ROLE_RANK.items() if rank <= ROLE_RANK[principal.role]],
              auth="on" if settings.auth_enabled else "off")  # fmt: skip
