"""Officers-present confirmations: who last confirmed, from which console session, that
officers are at a live deployment's camera. Kept in the hub process's memory only: a
hub that restarts (or crashes) has none, so it renews nothing until someone confirms
again, and the camera closes at its lease end."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class HoldTiming:
    """``[hold]`` of the hub config."""

    confirm_every_s: float
    renew_every_s: float
    lease_s: int


@dataclass(frozen=True)
class Hold:
    device_id: str
    deployment_id: str
    username: str
    #: The console session that confirmed; its unlocked key signs the renewals.
    session_key: str
    confirmed_at: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.device_id, self.deployment_id)


class OfficerHolds:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds: dict[tuple[str, str], Hold] = {}

    def confirm(self, hold: Hold) -> None:
        with self._lock:
            self._holds[hold.key] = hold

    def release(self, device_id: str, deployment_id: str) -> None:
        with self._lock:
            self._holds.pop((device_id, deployment_id), None)

    def get(self, device_id: str, deployment_id: str) -> Hold | None:
        with self._lock:
            return self._holds.get((device_id, deployment_id))

    def snapshot(self) -> dict[tuple[str, str], Hold]:
        with self._lock:
            return dict(self._holds)
