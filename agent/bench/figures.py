"""Summary statistics of timing samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``seconds``, in milliseconds (NaN when there are none)."""
    if not len(seconds):
        return float("nan")
    return round(float(np.percentile(np.asarray(seconds, dtype=np.float64), q)) * 1000.0, 3)


def summarise_ms(seconds: Sequence[float]) -> dict[str, float]:
    """count, median (p50) and p95 of durations given in seconds, in milliseconds."""
    return {
        "count": len(seconds),
        "p50_ms": percentile_ms(seconds, 50),
        "p95_ms": percentile_ms(seconds, 95),
    }
