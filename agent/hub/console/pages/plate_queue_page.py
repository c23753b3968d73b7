"""The live queue of plate hits (ANPR): undecided hits first, oldest first; filters by
camera, deployment and outcome, as the face alert queue. Kept current by server-sent
events from the hub's change feed (``/plates/events``: the plate store announces
``plate.stored``, ``plate.adjudicated`` and ``plates.purged``); the page's script
(``static/alert_queue.js``, pointed at ``/plates/rows``) re-reads the rows on each
and cues a new undecided hit. Reads the plate tables only, never a face record."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent.hub.console.access_control import allow, context
from agent.hub.console.change_events import change_stream
from agent.hub.console.pages.alert_queue_page import VIEWERS, queue_filters
from agent.hub.store.alert_store import OUTCOMES
from agent.hub.store.plate_alert_store import PlateAlertRow

#: Changes that alter what the plate queue shows.
PLATE_QUEUE_CHANGES = ("plate.stored", "plate.adjudicated", "plates.purged")


def _rows(request: Request) -> list[PlateAlertRow]:
    f = queue_filters(request)
    return context(request).plates.review_queue(
        device_id=f.get("camera"), deployment_id=f.get("deployment"), outcome=f.get("outcome")
    )


@allow(*VIEWERS)
def queue(request: Request) -> Response:
    return context(request).templates.TemplateResponse(
        request,
        "plate_queue.html",
        {
            "session": request.state.session,
            "rows": _rows(request),
            "filters": queue_filters(request),
            "outcomes": OUTCOMES,
        },
    )


@allow(*VIEWERS)
def queue_rows(request: Request) -> Response:
    return context(request).templates.TemplateResponse(
        request, "plate_queue_rows.html", {"rows": _rows(request)}
    )


@allow(*VIEWERS)
async def queue_events(request: Request) -> Response:
    return change_stream(request, PLATE_QUEUE_CHANGES)


routes = [
    Route("/plates", queue, methods=["GET"]),
    Route("/plates/rows", queue_rows, methods=["GET"]),
    Route("/plates/events", queue_events, methods=["GET"]),
]
