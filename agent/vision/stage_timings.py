"""How long each stage of the face pipeline took: durations only, never face data.

The newest ``TIMING_SAMPLES`` durations of each stage sit in a ring of float64 that is
allocated and written in full when the pipeline is built, so recording never allocates:
the daemon's memory does not move with the number of frames it has seen. (A deque of
Python floats, 32 bytes a sample allocated as it filled, grew the running daemon by
about 50 kB a minute for hours until full; the endurance soak read that as a leak.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

STAGES = ("detect", "align", "embed", "match")
#: Enough for the bench's percentiles over a whole clip; 4 stages x 160 kB in the daemon.
TIMING_SAMPLES = 20000


class StageTimings:
    """Durations (seconds) of each stage call: newest ``keep`` kept, totals and counts."""

    def __init__(self, keep: int = TIMING_SAMPLES) -> None:
        if keep < 1:
            raise ValueError(f"stage timings: keep {keep} must be at least 1")
        self._keep = keep
        # np.full writes every element: the pages are resident from the start.
        self._rings = {s: np.full(keep, np.nan) for s in STAGES}
        self.totals: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.counts: dict[str, int] = dict.fromkeys(STAGES, 0)
        self._lock = threading.Lock()  # the embedding thread records too

    def record(self, stage: str, seconds: float) -> None:
        with self._lock:
            n = self.counts[stage]
            self._rings[stage][n % self._keep] = seconds
            self.totals[stage] += seconds
            self.counts[stage] = n + 1

    def samples(self, stage: str) -> list[float]:
        """The kept durations of ``stage``, oldest first."""
        with self._lock:
            n, ring = self.counts[stage], self._rings[stage]
            if n <= self._keep:
                kept = ring[:n]
            else:
                cut = n % self._keep
                kept = np.concatenate((ring[cut:], ring[:cut]))
            return [float(x) for x in kept]

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.record(stage, time.perf_counter() - t0)

    def clear(self) -> None:
        with self._lock:
            for ring in self._rings.values():
                ring.fill(np.nan)
            self.totals = dict.fromkeys(STAGES, 0.0)
            self.counts = dict.fromkeys(STAGES, 0)
