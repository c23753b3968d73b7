"""What the Live page works with in the running service: the lease book, the
officers-present confirmations, the channel that sends stops, and the hold timing.
None in a console without a broker connection (the Live page then says so)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from agent.hub.devices.live_leases import LeaseBook
from agent.hub.devices.officer_holds import HoldTiming, OfficerHolds
from agent.hub.service.control_channel import ControlChannel


@dataclass
class HoldDesk:
    book: LeaseBook
    holds: OfficerHolds
    channel: ControlChannel
    timing: HoldTiming
    #: The stop document sent per deployment (its SHA-256), until its receipt arrives.
    _stops: dict[tuple[str, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stop_sent(self, key: tuple[str, str], document_sha256: str) -> None:
        with self._lock:
            self._stops[key] = document_sha256

    def stops_waiting(self) -> set[tuple[str, str]]:
        """Deployments whose stop went out and whose camera has not yet receipted it."""
        with self._lock:
            for key, sha in list(self._stops.items()):
                if self.channel.receipt(sha) is not None:  # receipted: the book shows it
                    del self._stops[key]
            return set(self._stops)
