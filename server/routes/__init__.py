"""HTTP routers, one module per resource; ``ROUTERS`` is what the app factory mounts."""

from fastapi import APIRouter

from server.routes import health

ROUTERS: list[APIRouter] = [health.router]
