"""The deployment reports the hub stored: the latest, newest first, and one report with
every figure the camera signed. Reports hold aggregate figures only; their text fields
come from a camera and are shown as untrusted text."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from agent.hub.console.access_control import allow, context

VIEWERS = ("operator", "supervisor", "auditor")
LIST_LIMIT = 200
#: The signed acknowledgement secret is the hub's business, not a figure to show.
HIDDEN_FIELDS = frozenset({"ack_box", "v"})


@allow(*VIEWERS)
def report_list(request: Request) -> Response:
    ctx = context(request)
    return ctx.templates.TemplateResponse(
        request,
        "reports.html",
        {"session": request.state.session, "reports": ctx.reports.latest(limit=LIST_LIMIT)},
    )


@allow(*VIEWERS)
def report_view(request: Request) -> Response:
    p = request.path_params
    found = context(request).reports.one(p["device_id"], p["deployment_id"], int(p["seq"]))
    if found is None:
        return PlainTextResponse("no such report", status_code=404)
    fields = sorted((k, v) for k, v in found.body.items() if k not in HIDDEN_FIELDS)
    return context(request).templates.TemplateResponse(
        request,
        "report.html",
        {"session": request.state.session, "report": found, "fields": fields},
    )


routes = [
    Route("/reports", report_list, methods=["GET"]),
    Route("/reports/{device_id}/{deployment_id}/{seq:int}", report_view, methods=["GET"]),
]
