"""The live alert queue: undecided alerts first, oldest first; filters by camera,
deployment and outcome; kept current by server-sent events from the hub's change feed
(``/alerts/events``), whichever worker or process stored the alert. The page's script
(``static/alert_queue.js``) re-reads the rows (``/alerts/rows``) on each event and
gives the visible and audible cue when an undecided alert appeared."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from agent.hub.console.access_control import allow, context
from agent.hub.console.change_events import change_stream
from agent.hub.store.alert_store import OUTCOMES, AlertRow
from agent.hub.store.legal_hold_store import LegalHold, LegalHoldStore

VIEWERS = ("operator", "supervisor", "auditor")
#: Changes that alter what the queue shows; the browser re-reads the rows on each.
QUEUE_CHANGES = (
    "alert.stored",
    "alert.adjudicated",
    "alerts.purged",
    "alert.held",
    "alert.released",
)
_FILTER = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def queue_filters(request: Request) -> dict[str, str]:
    """The query's filters; anything malformed is ignored rather than echoed (the plate
    queue takes the same ones)."""
    q = request.query_params
    found = {k: q.get(k, "") for k in ("camera", "deployment", "outcome")}
    found = {k: v for k, v in found.items() if _FILTER.fullmatch(v)}
    if found.get("outcome") not in (*OUTCOMES, "open", None):
        found.pop("outcome")
    return found


def _rows(request: Request) -> list[AlertRow]:
    f = queue_filters(request)
    return context(request).alerts.review_queue(
        device_id=f.get("camera"), deployment_id=f.get("deployment"), outcome=f.get("outcome")
    )


def _holds(request: Request, rows: list[AlertRow]) -> dict[int, LegalHold]:
    return LegalHoldStore(context(request).alerts.database).active_for([r.row_id for r in rows])


@allow(*VIEWERS)
def home(request: Request) -> Response:
    return RedirectResponse("/alerts", status_code=303)


@allow(*VIEWERS)
def queue(request: Request) -> Response:
    rows = _rows(request)
    return context(request).templates.TemplateResponse(
        request,
        "alert_queue.html",
        {
            "session": request.state.session,
            "rows": rows,
            "holds": _holds(request, rows),
            "filters": queue_filters(request),
            "outcomes": OUTCOMES,
        },
    )


@allow(*VIEWERS)
def queue_rows(request: Request) -> Response:
    rows = _rows(request)
    return context(request).templates.TemplateResponse(
        request, "alert_queue_rows.html", {"rows": rows, "holds": _holds(request, rows)}
    )


@allow(*VIEWERS)
async def queue_events(request: Request) -> Response:
    return change_stream(request, QUEUE_CHANGES)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/alerts", queue, methods=["GET"]),
    Route("/alerts/rows", queue_rows, methods=["GET"]),
    Route("/alerts/events", queue_events, methods=["GET"]),
]
