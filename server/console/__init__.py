"""The operations console at ``/ui``: NiceGUI pages served by the same process as the API.

Every page is a client of the HTTP API, called over loopback with the signed-in key (:mod:`server.console.api`),
so the API alone decides what a role may do: the console hides the controls a role cannot use and shows the
server's refusal word for word when it refuses. The key is kept in the tab's server-side storage, never in a
cookie or the page. NiceGUI serves its own assets (Vue, Quasar, ECharts) from its package: nothing comes from a CDN.

NiceGUI's application is one per process, so :func:`install_console` mounts it on the first app built in a process
and refuses (with a warning) to mount it on another; ``RIMAS_CONSOLE=false`` leaves it out.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from server.settings import Settings, is_loopback

log = logging.getLogger(__name__)

MOUNT = "/ui"
_mounted: list[FastAPI] = []


def api_base(settings: Settings) -> str:
    """Where the console reaches the API: this process's own listener, over loopback when it listens on all."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104 - read, not bound
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def install_console(app: FastAPI, settings: Settings) -> bool:
    """Mount the console on ``app`` at ``/ui``; False (and nothing mounted) when this process already has one."""
    if _mounted:
        log.warning("the console is already mounted on another app in this process; not mounted again")
        return False
    from nicegui import ui

    from server.console import (  # noqa: F401 - importing registers their pages
        approvals,
        chat,
        deviations,
        knowledge,
        models,
        orders,
        plan_view,
        plans,
        signin,
        upload,
    )
    from server.console.api import configure

    configure(api_base(settings), auth=settings.auth_enabled, loopback=is_loopback(settings.host))
    app.add_api_route("/", lambda: RedirectResponse(f"{MOUNT}/"), include_in_schema=False)  # the console's link
    ui.run_with(app, mount_path=MOUNT, title="RIMAS console", show_welcome_message=False, reconnect_timeout=10,
                favicon="🛒")  # fmt: skip
    _mounted.append(app)
    return True
