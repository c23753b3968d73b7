"""Login attempts per client address: at most ``max_attempts`` in ``window_s``.

The per-account lock-out (``console_accounts.py``) stops guessing one account's
password; this stops one address from trying many accounts (or locking them all out)
quickly. It is kept in this process's memory: each hub process counts on its own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MAX_TRACKED = 10_000


class LoginRateLimit:
    def __init__(
        self,
        max_attempts: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_attempts, self.window_s, self.clock = max_attempts, window_s, clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, address: str) -> bool:
        """Count an attempt from ``address``; False when it is over the limit."""
        now = self.clock()
        with self._lock:
            if len(self._seen) > MAX_TRACKED:
                self._forget_old(now)
            times = self._seen.setdefault(address, deque())
            while times and now - times[0] > self.window_s:
                times.popleft()
            if len(times) >= self.max_attempts:
                return False
            times.append(now)
            return True

    def _forget_old(self, now: float) -> None:
        for address in [a for a, t in self._seen.items() if not t or now - t[-1] > self.window_s]:
            del self._seen[address]
