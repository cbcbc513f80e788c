"""HTTP routers, one module per resource; ``ROUTERS`` is what the app factory mounts."""

from fastapi import APIRouter

from server.routes import approvals, assistants, deviations, health, knowledge, plans, runs, scoring, threads

ROUTERS: list[APIRouter] = [
    health.router,
    assistants.router,
    threads.router,
    runs.router,
    approvals.router,
    knowledge.router,
    scoring.router,
    deviations.router,
    plans.router,
]
