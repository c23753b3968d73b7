"""Where the console renders one alert: the camera's face crop and scene image beside
the watchlist entry's reference photos, subject and category (from the hub map), its
clip (an HTML5 video, or why there is none), the score against the deployment's
threshold, quality figures, camera, deployment and times; and the adjudication form,
recorded under the logged-in user's name with the operator's note. Images and the clip
are served from the stores by the alert's row id (never from a path the request names),
as image/jpeg and video/mp4, never cached. Only a clip the hub stored complete (joined,
hash-checked against the camera's signed manifest, decrypted and decoded) is ever
served: a partial or damaged one never reaches the media store."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from agent.hub.console.access_control import allow, context
from agent.hub.store.alert_store import OUTCOMES, AlertRow, AlertStoreError
from agent.hub.store.legal_hold_store import LegalHoldStore
from agent.hub.watchlists.hub_maps import WatchlistEntry, reference_image

VIEWERS = ("operator", "supervisor", "auditor")
DECIDERS = ("operator", "supervisor")
#: Who puts an alert on legal hold and releases it (``legal_hold_page.py``).
HOLDERS = ("supervisor",)
MAX_NOTE = 2000


def _alert(request: Request) -> AlertRow | None:
    try:
        return context(request).alerts.get_row(int(request.path_params["row_id"]))
    except AlertStoreError:
        return None


@allow(*VIEWERS)
def review(request: Request) -> Response:
    row = _alert(request)
    if row is None:
        return PlainTextResponse("no such alert (it may have been purged)", status_code=404)
    ctx = context(request)
    has_scene = ctx.alerts.crop(row.alert_id, "scene", device_id=row.device_id) is not None
    clip = ctx.media.clip(row.row_id, with_video=False)
    entry = _entry(request, row)
    return ctx.templates.TemplateResponse(
        request,
        "alert_review.html",
        {
            "session": request.state.session,
            "alert": row,
            "has_scene": has_scene,
            "clip": clip,
            "entry": entry,
            "history": ctx.alerts.adjudication_history(row.row_id),
            "outcomes": OUTCOMES,
            "may_decide": request.state.session.role in DECIDERS,
            "hold": LegalHoldStore(ctx.alerts.database).active(row.row_id),
            "may_hold": request.state.session.role in HOLDERS,
        },
    )


def _entry(request: Request, row: AlertRow) -> WatchlistEntry | None:
    maps = context(request).hub_maps
    return None if maps is None else maps.entry(row.deployment_id, row.watchlist_entry)


@allow(*VIEWERS)
def reference_photo(request: Request) -> Response:
    """The n-th reference photo of the alert's watchlist entry, from its hub map."""
    row = _alert(request)
    entry = None if row is None else _entry(request, row)
    n = int(request.path_params["n"])
    found = reference_image(entry.photos[n]) if entry and 0 <= n < len(entry.photos) else None
    if found is None:
        return PlainTextResponse("no such image", status_code=404)
    data, media_type = found
    return Response(data, media_type=media_type, headers={"Cache-Control": "no-store"})


def _image(request: Request, kind: str) -> Response:
    row = _alert(request)
    jpeg = None
    if row is not None:
        jpeg = context(request).alerts.crop(row.alert_id, kind, device_id=row.device_id)
    if jpeg is None:
        return PlainTextResponse("no such image", status_code=404)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@allow(*VIEWERS)
def probe_image(request: Request) -> Response:
    return _image(request, "probe")


@allow(*VIEWERS)
def scene_image(request: Request) -> Response:
    return _image(request, "scene")


@allow(*VIEWERS)
def clip_video(request: Request) -> Response:
    row = _alert(request)
    clip = context(request).media.clip(row.row_id) if row is not None else None
    if clip is None or clip.state != "complete" or clip.mp4 is None:
        return PlainTextResponse("no clip for this alert", status_code=404)
    # The whole file in one response: clips are a few hundred KiB, and browsers play an
    # MP4 without range requests when the server does not offer them.
    return Response(clip.mp4, media_type="video/mp4", headers={"Cache-Control": "no-store"})


@allow(*DECIDERS)
async def adjudicate(request: Request) -> Response:
    form = await request.form()  # already read (and bounded) by the CSRF check
    outcome, note = form.get("outcome"), form.get("note", "")
    if outcome not in OUTCOMES or not isinstance(note, str):
        return PlainTextResponse(f"outcome: must be one of {', '.join(OUTCOMES)}", 400)
    if len(note) > MAX_NOTE:
        return PlainTextResponse(f"note: at most {MAX_NOTE} characters", status_code=400)
    row = _alert(request)
    if row is None:
        return PlainTextResponse("no such alert (it may have been purged)", status_code=404)
    ctx = context(request)
    username = request.state.session.username
    ctx.alerts.adjudicate(
        row.alert_id, str(outcome), username, device_id=row.device_id, note=note.strip()
    )
    ctx.audit.record(
        "alert.adjudicated",
        alert_id=row.alert_id,
        device=row.device_id,
        outcome=str(outcome),
        username=username,
    )
    return RedirectResponse(f"/alerts/{row.row_id}", status_code=303)


routes = [
    Route("/alerts/{row_id:int}", review, methods=["GET"]),
    Route("/alerts/{row_id:int}/probe.jpg", probe_image, methods=["GET"]),
    Route("/alerts/{row_id:int}/scene.jpg", scene_image, methods=["GET"]),
    Route("/alerts/{row_id:int}/clip.mp4", clip_video, methods=["GET"]),
    Route("/alerts/{row_id:int}/reference/{n:int}", reference_photo, methods=["GET"]),
    Route("/alerts/{row_id:int}/adjudicate", adjudicate, methods=["POST"]),
]
