"""The console's app factory: the pages, the static files and the security headers."""

from __future__ import annotations

from types import ModuleType

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from agent.hub.console.console_context import STATIC_DIR, ConsoleContext
from agent.hub.console.pages import (
    alert_queue_page,
    alert_review_page,
    deployments_page,
    fleet_page,
    legal_hold_page,
    live_page,
    login_page,
    plate_queue_page,
    plate_review_page,
    public_notices_page,
    public_results_page,
    reports_page,
    signing_page,
)
from agent.hub.console.security_headers import SecurityHeaders

PAGES: list[ModuleType] = [
    login_page,
    alert_queue_page,
    alert_review_page,
    legal_hold_page,
    plate_queue_page,
    plate_review_page,
    fleet_page,
    live_page,
    deployments_page,
    reports_page,
    public_results_page,
    public_notices_page,
    signing_page,
]


def create_console_app(ctx: ConsoleContext) -> Starlette:
    routes: list[BaseRoute] = []
    for page in PAGES:
        routes.extend(page.routes)
    routes.append(Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"))
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.context = ctx
    return app
