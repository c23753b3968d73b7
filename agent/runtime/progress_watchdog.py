"""The systemd watchdog, fed by real progress instead of a timer.

Each part of the pipeline calls ``beat("capture")``, ``beat("vision")``… when
it has done a unit of work. The watchdog thread sends ``WATCHDOG=1`` only while
every *required* component has beaten within its deadline; if one stalls
(a hung camera read, a deadlocked worker) the pings stop and systemd restarts
the service after ``WatchdogSec``. Components that only run during a
deployment are required only then: ``require("capture", 5.0)`` when the camera
opens, ``release("capture")`` when it closes.

The ping interval is half of ``$WATCHDOG_USEC``; without it (not under
systemd) the watchdog still tracks stalls, which the health status reports.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from agent.runtime.sd_notify import watchdog_interval_s

log = logging.getLogger("agent.runtime.watchdog")


class WatchdogSink(Protocol):
    def watchdog(self) -> bool: ...


class ProgressWatchdog:
    """Pings ``sink.watchdog()`` every ``interval_s`` while no required component is stalled."""

    def __init__(
        self,
        sink: WatchdogSink,
        interval_s: float | None,
        required: Mapping[str, float] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s is not None and interval_s <= 0:
            raise ValueError("watchdog interval must be positive")
        self._sink = sink
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._deadlines: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._reported_stall: frozenset[str] = frozenset()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0
        self.rounds = 0  # check() calls, so a caller can tell that rounds went by
        self.healthy = True  # outcome of the latest check()
        for name, deadline in (required or {}).items():
            self.require(name, deadline)

    @classmethod
    def from_environment(
        cls,
        sink: WatchdogSink,
        required: Mapping[str, float] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> ProgressWatchdog:
        """Interval from ``$WATCHDOG_USEC`` / 2 (None, i.e. no pings, when unset)."""
        return cls(sink, watchdog_interval_s(), required, clock=clock)

    def require(self, component: str, deadline_s: float) -> None:
        """From now on ``component`` must beat at least every ``deadline_s`` seconds."""
        if deadline_s <= 0:
            raise ValueError(f"deadline of {component!r} must be positive")
        with self._lock:
            self._deadlines[component] = deadline_s
            self._last[component] = self._clock()  # a fresh requirement starts with credit

    def release(self, component: str) -> None:
        """``component`` is no longer expected to make progress (e.g. the camera closed)."""
        with self._lock:
            self._deadlines.pop(component, None)
            self._last.pop(component, None)

    def beat(self, component: str) -> None:
        """Record progress. Cheap enough to call once per frame."""
        now = self._clock()
        with self._lock:
            if component in self._deadlines:
                self._last[component] = now

    def stalled(self) -> list[str]:
        """Required components whose last beat is older than their deadline."""
        now = self._clock()
        with self._lock:
            return sorted(
                name
                for name, deadline in self._deadlines.items()
                if now - self._last.get(name, now) > deadline
            )

    def check(self) -> bool:
        """One round: ping when healthy; log a stall once when it starts and when it ends."""
        stalled = self.stalled()
        current = frozenset(stalled)
        if current != self._reported_stall:
            if current:
                log.warning(
                    "pipeline stalled (%s); withholding watchdog pings",
                    ", ".join(stalled),
                    extra={"component": ",".join(stalled), "state": "stalled"},
                )
            else:
                log.info("pipeline progressing again; watchdog pings resume")
            self._reported_stall = current
        self.healthy = not current
        self.rounds += 1
        if current:
            return False
        if self.interval_s is None:
            return True
        if self._sink.watchdog():
            self.pings += 1
        return True

    def start(self) -> None:
        """Start the ping thread (does nothing when systemd expects no pings)."""
        if self.interval_s is None or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        interval = self.interval_s or 1.0
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # the thread must survive a logging or sink failure
                log.exception("watchdog check failed")
            self._stop.wait(interval)
