"""Public notices of deployments, without login: ``/notices`` (a page) and
``/notices.json``. Each published notice gives the place, the window and the purpose
category, and, when a supervisor went ahead without a notice published before the
window start, the reason recorded. Nothing about the watchlist, the camera's
settings or any person."""

from __future__ import annotations

import datetime as dt

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.hub.console.access_control import context
from agent.hub.store.deployment_store import Deployment, DeploymentStore


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def notice(d: Deployment) -> dict[str, object]:
    """What the public is told of one deployment."""
    return {
        "place": d.place,
        "purpose": d.purpose,
        "window_start": _iso(d.window_start),
        "window_end": _iso(d.window_end),
        "published_at": _iso(d.notice_published_at),
        "urgent_reason": d.urgent_reason,
    }


def _notices(request: Request) -> list[Deployment]:
    return DeploymentStore(context(request).alerts.database).public_notices()


async def notices_page(request: Request) -> Response:
    found = await anyio.to_thread.run_sync(_notices, request)
    return context(request).templates.TemplateResponse(
        request, "notices.html", {"session": None, "notices": found}
    )


async def notices_json(request: Request) -> Response:
    found = await anyio.to_thread.run_sync(_notices, request)
    return JSONResponse({"notices": [notice(d) for d in found]})


routes = [
    Route("/notices", notices_page, methods=["GET"]),
    Route("/notices.json", notices_json, methods=["GET"]),
]
