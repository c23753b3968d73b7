"""Where the console renders one plate hit: the plate as read (camera text, shown
escaped), its format and colour, the voted read's confidence against the deployment's
threshold, how many reads agreed, the plate and vehicle crops, the hotlist entry's
reason and category (from the hotlist's hub map, when kept in the maps folder), the
decisions so far and the adjudication form. Crops are served from the plate store by
the hit's row id (never from a path the request names), as image/jpeg, never cached.
Adjudication takes the face alerts' outcomes and roles and is audited alike
(``plate.adjudicated``). Reads the plate tables only, never a face record."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from agent.hub.console.access_control import allow, context
from agent.hub.console.pages.alert_review_page import DECIDERS, VIEWERS
from agent.hub.store.alert_store import OUTCOMES
from agent.hub.store.plate_alert_store import PlateAlertRow, PlateAlertStoreError
from agent.hub.watchlists.hub_maps import HotlistEntry

GONE = "no such plate hit (it may have been purged)"


def _hit(request: Request) -> PlateAlertRow | None:
    try:
        return context(request).plates.get_row(int(request.path_params["row_id"]))
    except PlateAlertStoreError:
        return None


def _entry(request: Request, row: PlateAlertRow) -> HotlistEntry | None:
    maps = context(request).hub_maps
    return None if maps is None else maps.hotlist_entry(row.deployment_id, row.hotlist_entry)


@allow(*VIEWERS)
def review(request: Request) -> Response:
    row = _hit(request)
    if row is None:
        return PlainTextResponse(GONE, status_code=404)
    ctx = context(request)
    return ctx.templates.TemplateResponse(
        request,
        "plate_review.html",
        {
            "session": request.state.session,
            "hit": row,
            "entry": _entry(request, row),
            "has_vehicle": ctx.plates.crop(row.row_id, "vehicle") is not None,
            "history": ctx.plates.adjudication_history(row.row_id),
            "outcomes": OUTCOMES,
            "may_decide": request.state.session.role in DECIDERS,
        },
    )


def _crop(request: Request, kind: str) -> Response:
    row = _hit(request)
    jpeg = None if row is None else context(request).plates.crop(row.row_id, kind)
    if jpeg is None:
        return PlainTextResponse("no such image", status_code=404)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@allow(*VIEWERS)
def plate_image(request: Request) -> Response:
    return _crop(request, "plate")


@allow(*VIEWERS)
def vehicle_image(request: Request) -> Response:
    return _crop(request, "vehicle")


@allow(*DECIDERS)
async def adjudicate(request: Request) -> Response:
    form = await request.form()  # already read (and bounded) by the CSRF check
    outcome = form.get("outcome")
    if outcome not in OUTCOMES:
        return PlainTextResponse(f"outcome: must be one of {', '.join(OUTCOMES)}", 400)
    row = _hit(request)
    if row is None:
        return PlainTextResponse(GONE, status_code=404)
    ctx = context(request)
    username = request.state.session.username
    try:
        ctx.plates.adjudicate_row(row.row_id, str(outcome), username)
    except PlateAlertStoreError:  # purged between the lookup and the decision
        return PlainTextResponse(GONE, status_code=404)
    ctx.audit.record(
        "plate.adjudicated",
        alert_id=row.alert_id,
        device=row.device_id,
        outcome=str(outcome),
        username=username,
    )
    return RedirectResponse(f"/plates/{row.row_id}", status_code=303)


routes = [
    Route("/plates/{row_id:int}", review, methods=["GET"]),
    Route("/plates/{row_id:int}/plate.jpg", plate_image, methods=["GET"]),
    Route("/plates/{row_id:int}/vehicle.jpg", vehicle_image, methods=["GET"]),
    Route("/plates/{row_id:int}/adjudicate", adjudicate, methods=["POST"]),
]
