"""The public results per period: ``/results?from=YYYY-MM-DD&to=YYYY-MM-DD`` as a
printable page and ``/results.csv`` (``agent/hub/transparency/public_results.py`` builds
the rows; no personal data). Without dates the page shows the last 31 days. Each export
is recorded in the hub audit log (``results.exported``)."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from agent.errors import UsageError
from agent.hub.console.access_control import allow, context
from agent.hub.transparency.public_results import (
    Period,
    parse_period,
    public_results,
    results_csv,
    totals,
)

VIEWERS = ("operator", "supervisor", "auditor")
DEFAULT_DAYS = 31


def _period(request: Request, *, default: bool) -> Period:
    q = request.query_params
    if default and "from" not in q and "to" not in q:
        today = dt.datetime.now(dt.UTC).date()
        return Period(today - dt.timedelta(days=DEFAULT_DAYS - 1), today)
    return parse_period(q.get("from"), q.get("to"))


def _audit(request: Request, period: Period, form: str, rows: int) -> None:
    context(request).audit.record(
        "results.exported",
        first=period.first.isoformat(),
        last=period.last.isoformat(),
        format=form,
        rows=rows,
        username=request.state.session.username,
    )


@allow(*VIEWERS)
def results_page(request: Request) -> Response:
    try:
        period = _period(request, default=True)
    except UsageError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    ctx = context(request)
    rows = public_results(ctx.reports, ctx.alerts, period)
    _audit(request, period, "html", len(rows))
    return ctx.templates.TemplateResponse(
        request,
        "results.html",
        {
            "session": request.state.session,
            "period": period,
            "rows": rows,
            "totals": totals(rows),
        },
    )


@allow(*VIEWERS)
def results_csv_file(request: Request) -> Response:
    try:
        period = _period(request, default=False)
    except UsageError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    ctx = context(request)
    rows = public_results(ctx.reports, ctx.alerts, period)
    _audit(request, period, "csv", len(rows))
    name = f"lfr-results-{period.first}-{period.last}.csv"
    return Response(
        results_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


routes = [
    Route("/results", results_page, methods=["GET"]),
    Route("/results.csv", results_csv_file, methods=["GET"]),
]
