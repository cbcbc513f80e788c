"""FastAPI dependency for the graph runtime of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.errors import ApiError
from server.runtime.core import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime = getattr(request.app.state.resources, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise ApiError(503, "unavailable", "the graph runtime is not running")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
