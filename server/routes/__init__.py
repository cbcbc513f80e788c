"""HTTP routers, one module per resource; ``ROUTERS`` is what the app factory mounts."""

from fastapi import APIRouter

from server.routes import (
    ai_tasks,
    approvals,
    assistants,
    chat,
    crons,
    customer_service,
    deviations,
    feedback,
    health,
    knowledge,
    me,
    models,
    plans,
    runs,
    scoring,
    shop,
    store,
    threads,
)

ROUTERS: list[APIRouter] = [
    health.router,
    me.router,
    assistants.router,
    threads.router,
    runs.router,
    crons.router,
    store.router,
    approvals.router,
    knowledge.router,
    models.router,
    scoring.router,
    deviations.router,
    plans.router,
    feedback.router,
    shop.router,
    customer_service.router,
    chat.router,
    ai_tasks.router,
]
