"""Live deployments as the hub knows them: from the cameras' signed control receipts.

A camera's status says only that it is live, not which deployment or until when, and
it is unsigned. What the hub can stand behind is what a camera signed: the receipt for
an activation, renewal or stop it applied (``agent/hub/intake/control_receipts.py``).
A deployment is live here from its applied activation until its applied stop, a
refused renewal, or the end of its lease. The lease end is the camera's receipt time
plus the lease of the document it applied, when this hub process sent that document
(``expect``); a deployment activated from elsewhere shows its lease once the hub has
renewed it. Kept in memory: after a restart the hub knows a deployment again from its
next receipt (a console activation or renewal), so nothing is renewed that no officer
confirmed since.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.hub.intake.control_receipts import ControlReceipt

#: Ended deployments kept for the pages (newest win).
MAX_ENDED = 200


@dataclass(frozen=True)
class LiveLease:
    device_id: str
    deployment_id: str
    #: When the camera applied its activation (camera clock), None if the hub first
    #: heard of it from a renewal.
    since: float | None
    #: When the camera closes unless renewed; None: not known to this hub process.
    lease_until: float | None
    #: The capture gate after the last document the camera applied.
    camera: str
    #: None while live; else why it ended ("stopped", "lease lapsed", "renewal refused …").
    ended: str | None = None
    ended_at: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.device_id, self.deployment_id)

    def seconds_left(self, now: float) -> float | None:
        return None if self.lease_until is None else max(0.0, self.lease_until - now)


class LeaseBook:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._leases: dict[tuple[str, str], LiveLease] = {}
        self._lease_of_document: dict[str, int] = {}

    def expect(self, document: bytes, lease_s: int) -> None:
        """Remember the lease of an activation or renewal about to be sent."""
        with self._lock:
            self._lease_of_document[hashlib.sha256(document).hexdigest()] = lease_s

    def on_receipt(self, r: ControlReceipt) -> None:
        if r.deployment_id is None or r.kind not in ("activation", "renewal", "stop"):
            return
        key = (r.device_id, r.deployment_id)
        with self._lock:
            lease_s = self._lease_of_document.pop(r.document_sha256, None)
            until = None if lease_s is None else r.received_at + lease_s
            known = self._leases.get(key)
            if not r.applied:
                if r.kind == "renewal" and known is not None and known.ended is None:
                    self._end(known, f"renewal refused ({r.step})", r.received_at)
                return
            if r.kind == "activation":
                self._leases[key] = LiveLease(*key, r.received_at, until, r.camera)
            elif r.kind == "renewal":
                base = known if known is not None and known.ended is None else None
                if base is None:
                    base = LiveLease(*key, None, None, r.camera)
                self._leases[key] = replace(
                    base, lease_until=until if until is not None else base.lease_until
                )
            elif known is not None:
                self._end(replace(known, camera=r.camera), "stopped", r.received_at)
            else:
                self._leases[key] = LiveLease(*key, None, None, r.camera, "stopped", r.received_at)
            self._trim()

    def _end(self, lease: LiveLease, why: str, at: float) -> None:
        self._leases[lease.key] = replace(lease, ended=why, ended_at=at)

    def _trim(self) -> None:
        ended = sorted(
            (v for v in self._leases.values() if v.ended is not None),
            key=lambda v: v.ended_at or 0.0,
        )
        for old in ended[: max(0, len(ended) - MAX_ENDED)]:
            del self._leases[old.key]

    def leases(self) -> list[LiveLease]:
        """Every deployment known, a lapsed lease shown as ended, newest first."""
        now = self.clock()
        with self._lock:
            for v in list(self._leases.values()):
                if v.ended is None and v.lease_until is not None and v.lease_until <= now:
                    self._end(replace(v, camera="closed"), "lease lapsed", v.lease_until)
            found = list(self._leases.values())
        return sorted(found, key=lambda v: (v.ended is not None, v.device_id, v.deployment_id))

    def live(self) -> list[LiveLease]:
        return [v for v in self.leases() if v.ended is None]

    def of_device(self, device_id: str) -> LiveLease | None:
        """The device's live deployment, else its most recently ended one."""
        mine = [v for v in self.leases() if v.device_id == device_id]
        return mine[0] if mine else None
