"""The fleet page: every enrolled camera with its state (offline / idle / armed /
live …), deployment-relevant figures (fps, temperature, outbox depth), when it was
last heard, its model hashes and the lease left of its live deployment (from the
camera's signed receipts; a camera whose lease lapsed or that applied a stop shows
closed even before its next status), kept current by server-sent events (``device.status``).
Statuses are unsigned monitoring messages: the page says so."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent.hub.console.access_control import allow, context
from agent.hub.console.change_events import change_stream
from agent.hub.devices.live_leases import LiveLease
from agent.hub.store.device_status_store import DeviceStatusStore, FleetEntry

VIEWERS = ("operator", "supervisor", "auditor")
FLEET_CHANGES = ("device.status", "device.key")
#: How the device's states are shown (the device says "active" while a deployment is live).
STATE_LABELS = {"active": "live"}


def _fleet(request: Request) -> list[FleetEntry]:
    return DeviceStatusStore(context(request).alerts.database).fleet()


def _leases(request: Request) -> dict[str, LiveLease]:
    """Each camera's live (else last ended) deployment, from its signed receipts."""
    desk = context(request).hold_desk
    if desk is None:
        return {}
    found: dict[str, LiveLease] = {}
    for lease in desk.book.leases():  # live ones first
        found.setdefault(lease.device_id, lease)
    return found


def _values(request: Request) -> dict[str, object]:
    return {
        "devices": _fleet(request),
        "leases": _leases(request),
        "now": time.time(),
        "labels": STATE_LABELS,
    }


@allow(*VIEWERS)
def fleet(request: Request) -> Response:
    return context(request).templates.TemplateResponse(
        request, "fleet.html", {"session": request.state.session, **_values(request)}
    )


@allow(*VIEWERS)
def fleet_rows(request: Request) -> Response:
    return context(request).templates.TemplateResponse(request, "fleet_rows.html", _values(request))


@allow(*VIEWERS)
async def fleet_events(request: Request) -> Response:
    return change_stream(request, FLEET_CHANGES)


routes = [
    Route("/fleet", fleet, methods=["GET"]),
    Route("/fleet/rows", fleet_rows, methods=["GET"]),
    Route("/fleet/events", fleet_events, methods=["GET"]),
]
