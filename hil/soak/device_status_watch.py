"""The device's retained status messages as the soak sees them: the frame rate it reports,
integrated into frames processed, and its dropped-frame count.

The status carries operational figures only (no faces); it is parsed with the protocol's
own checks before any figure is used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.protocol.device_status import StatusError, parse_status

#: A status older than this says nothing about the frame rate now (the device is down or
#: cut off): the sampler records a gap.
STALE_AFTER_S = 15.0


@dataclass(frozen=True)
class StatusFigures:
    fps: float | None
    frames: float
    dropped_frames: int | None
    state: str


class DeviceStatusWatch:
    """Fed by the MQTT link's handler for ``lfr/v1/<dev>/status``. Thread-safe."""

    def __init__(self, device_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.device_id = device_id
        self._clock = clock
        self._lock = threading.Lock()
        self._fps: float | None = None
        self._dropped: int | None = None
        self._dropped_before = 0  # dropped frames of earlier daemon runs (counts restart)
        self._state = "unknown"
        self._at: float | None = None
        self._frames = 0.0
        self.bad_messages = 0

    def on_message(self, topic: str, payload: bytes) -> None:
        try:
            status = parse_status(self.device_id, payload)
        except StatusError:
            with self._lock:
                self.bad_messages += 1
            return
        now = self._clock()
        with self._lock:
            if not status.online:
                self._state, self._fps, self._at = "offline", None, None
                if self._dropped is not None:
                    self._dropped_before, self._dropped = self._dropped, None
                return
            fps = status.body.get("fps")
            if self._at is not None and self._fps is not None:
                # Frames since the last report, at the rate the device then reported.
                self._frames += self._fps * max(0.0, now - self._at)
            self._fps = float(fps) if isinstance(fps, int | float) else None
            dropped = status.body.get("dropped_frames")
            if isinstance(dropped, int):
                self._dropped = self._dropped_before + dropped
            self._state = str(status.body.get("state"))
            self._at = now

    def figures(self) -> StatusFigures:
        with self._lock:
            fresh = self._at is not None and self._clock() - self._at <= STALE_AFTER_S
            return StatusFigures(
                fps=self._fps if fresh else None,
                frames=self._frames,
                dropped_frames=self._dropped,
                state=self._state if fresh else "unknown",
            )
