"""The Live page: every deployment the cameras' receipts say is live, with its lease
countdown, who last confirmed officers present, and two buttons.

- 'Officers present' (operator, supervisor; the user's signing key unlocked) records a
  confirmation under this session (audited ``hold.confirmed``); the renewal keeper
  (``agent/hub/service/renewal_keeper.py``) then renews the lease with this session's
  key until the confirmation is ``[hold] confirm_every_s`` old.
- 'Stop' signs a stop with the session's key and sends it (audited
  ``deployment.stop``); the row says 'stop applied' only when the camera's signed
  receipt for that stop has arrived.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from agent.errors import LfrError
from agent.hub.accounts.console_accounts import session_key
from agent.hub.console.access_control import allow, context
from agent.hub.console.hold_desk import HoldDesk
from agent.hub.console.signing_sessions import UnlockedKey
from agent.hub.devices.live_leases import LiveLease
from agent.hub.devices.officer_holds import Hold

VIEWERS = ("operator", "supervisor", "auditor")
ACTORS = ("operator", "supervisor")
#: How long a Stop waits for the camera's receipt before the page comes back (the row
#: keeps saying 'waiting' until it arrives).
STOP_WAIT_S = 5.0


def _values(request: Request) -> dict[str, object]:
    ctx = context(request)
    desk = ctx.hold_desk
    session = request.state.session
    return {
        "session": session,
        "desk": desk,
        "leases": desk.book.leases() if desk else [],
        "holds": desk.holds.snapshot() if desk else {},
        "stopping": desk.stops_waiting() if desk else set(),
        "unlocked": ctx.signing.of_session(session_key(session.token)),
        "now": time.time(),
    }


@allow(*VIEWERS)
def live(request: Request) -> Response:
    return context(request).templates.TemplateResponse(request, "live.html", _values(request))


@allow(*VIEWERS)
def live_rows(request: Request) -> Response:
    return context(request).templates.TemplateResponse(request, "live_rows.html", _values(request))


def _target(request: Request) -> tuple[HoldDesk, LiveLease, UnlockedKey] | Response:
    """The desk, the live deployment named by the path and the session's unlocked key;
    or the refusal to send."""
    ctx = context(request)
    desk = ctx.hold_desk
    if desk is None:
        return PlainTextResponse("this hub process has no broker connection", status_code=409)
    key = (request.path_params["device_id"], request.path_params["deployment_id"])
    lease = next((v for v in desk.book.live() if v.key == key), None)
    if lease is None:
        return PlainTextResponse("no such live deployment (it may have ended)", status_code=404)
    session = request.state.session
    # A key whose session was locked out or disabled since the last tick goes first.
    ctx.signing.prune(ctx.accounts.live_session_keys())
    unlocked = ctx.signing.of_session(session_key(session.token))
    if unlocked is None:
        return PlainTextResponse(
            "unlock your signing key first (Signing key page)", status_code=409
        )
    return desk, lease, unlocked


@allow(*ACTORS)
def confirm(request: Request) -> Response:
    found = _target(request)
    if isinstance(found, Response):
        return found
    desk, lease, unlocked = found
    ctx = context(request)
    hold = Hold(*lease.key, unlocked.username, unlocked.session_key, time.time())
    desk.holds.confirm(hold)
    ctx.audit.record(
        "hold.confirmed",
        device=lease.device_id,
        deployment=lease.deployment_id,
        username=unlocked.username,
    )
    return RedirectResponse("/live", status_code=303)


@allow(*ACTORS)
def stop(request: Request) -> Response:
    found = _target(request)
    if isinstance(found, Response):
        return found
    desk, lease, unlocked = found
    ctx = context(request)
    reason = f"stopped from the hub console by {unlocked.username}"
    try:
        document = unlocked.issuer.stop(lease.device_id, lease.deployment_id, reason)
        sha = desk.channel.send(lease.device_id, document)
    except LfrError as exc:
        return PlainTextResponse(f"stop not sent: {exc}", status_code=409)
    # No renewal may follow a stop, whoever confirmed.
    desk.holds.release(*lease.key)
    desk.stop_sent(lease.key, sha)
    ctx.audit.record(
        "deployment.stop",
        device=lease.device_id,
        deployment=lease.deployment_id,
        username=unlocked.username,
        document_sha256=sha,
    )
    desk.channel.wait(document, STOP_WAIT_S)
    return RedirectResponse("/live", status_code=303)


routes = [
    Route("/live", live, methods=["GET"]),
    Route("/live/rows", live_rows, methods=["GET"]),
    Route("/live/{device_id}/{deployment_id}/confirm", confirm, methods=["POST"]),
    Route("/live/{device_id}/{deployment_id}/stop", stop, methods=["POST"]),
]
