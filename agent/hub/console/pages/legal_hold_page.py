"""Legal holds from the alert page: a supervisor puts an alert on hold with a case
reference (refused without one) and releases it; the retention purge skips a held
alert until then (``agent/hub/store/legal_hold_store.py``). Both are recorded in the
hub audit log (``alert.held``, ``alert.hold_released``) under the logged-in user."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from agent.errors import UsageError
from agent.hub.console.access_control import allow, context
from agent.hub.console.pages.alert_review_page import HOLDERS
from agent.hub.store.alert_store import AlertRow, AlertStoreError
from agent.hub.store.legal_hold_store import LegalHoldError, LegalHoldStore


def _alert(request: Request) -> AlertRow | None:
    try:
        return context(request).alerts.get_row(int(request.path_params["row_id"]))
    except AlertStoreError:
        return None


@allow(*HOLDERS)
async def hold(request: Request) -> Response:
    form = await request.form()  # already read (and bounded) by the CSRF check
    case_ref = form.get("case_ref", "")
    row = _alert(request)
    if row is None:
        return PlainTextResponse("no such alert (it may have been purged)", status_code=404)
    ctx = context(request)
    username = request.state.session.username
    try:
        placed = LegalHoldStore(ctx.alerts.database).hold(
            row.row_id, case_ref if isinstance(case_ref, str) else "", username
        )
    except UsageError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    except LegalHoldError as exc:
        return PlainTextResponse(str(exc), status_code=409)
    ctx.audit.record(
        "alert.held",
        alert_id=row.alert_id,
        device=row.device_id,
        case_ref=placed.case_ref,
        username=username,
    )
    return RedirectResponse(f"/alerts/{row.row_id}", status_code=303)


@allow(*HOLDERS)
def release(request: Request) -> Response:
    row = _alert(request)
    if row is None:
        return PlainTextResponse("no such alert (it may have been purged)", status_code=404)
    ctx = context(request)
    username = request.state.session.username
    try:
        released = LegalHoldStore(ctx.alerts.database).release(row.row_id, username)
    except LegalHoldError as exc:
        return PlainTextResponse(str(exc), status_code=409)
    ctx.audit.record(
        "alert.hold_released",
        alert_id=row.alert_id,
        device=row.device_id,
        case_ref=released.case_ref,
        username=username,
    )
    return RedirectResponse(f"/alerts/{row.row_id}", status_code=303)


routes = [
    Route("/alerts/{row_id:int}/hold", hold, methods=["POST"]),
    Route("/alerts/{row_id:int}/release", release, methods=["POST"]),
]
