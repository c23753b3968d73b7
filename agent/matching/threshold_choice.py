"""Choosing a score threshold for a target false-alert rate (FPIR) from non-mated faces.

A non-mated face *alerts* at threshold T when some entry among its top k reaches T
with a cosine of at least the device's floor (``Ranking.first_above_floor``), exactly
as the camera's matcher decides. Given the alert scores of n non-mated faces against
the watchlist, the threshold for a target t is the lowest (on a 1e-4 grid) that lets
at most ⌊t·n⌋ of them alert; it is never below the lowest threshold the score kind
allows (the cosine floor, or 0 for S-norm). The rate it achieves on those faces,
k/n, comes with its Wilson 95 % confidence interval (exact enough at the small k a
calibration has, and never outside 0–1).

A cohort of n faces supports a target t only when n·t ≥ 3
(``MIN_FALSE_ALERTS_PER_TARGET``): with fewer expected false alerts the chosen
threshold is set by one or two faces and says nothing about the rate.

Used by the hub's calibration (``lfr-hub calibrate``, activations with a target
FPIR) and by ``lfr-agent eval openset`` (thresholds at FPIR targets, per-group rates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.errors import UsageError
from agent.matching.gallery import Gallery
from agent.trust.activation_token import (
    MIN_FALSE_ALERTS_PER_TARGET,
    Calibration,
    cohort_problem,
    target_problem,
    threshold_range,
)

Z95 = 1.959963984540054
GRID = 1e-4


class TargetNotSupported(UsageError):
    """The target FPIR is not a rate, or the cohort is too small to support it."""


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold for one target FPIR, and what it achieves on the non-mated cohort."""

    target_fpir: float
    score: str
    threshold: float
    floor: float
    calibration: Calibration


def wilson_interval(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval of a rate of k in n (n ≥ 1)."""
    p = k / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def alert_scores(
    gallery: Gallery,
    probes: npt.NDArray[np.floating],
    score: str,
    *,
    floor: float,
    top_k: int,
    batch: int = 256,
) -> npt.NDArray[np.float32]:
    """Per probe, the score that decides whether it alerts (-inf: no entry reaches the floor)."""
    out = np.empty(len(probes), np.float32)
    for start in range(0, len(probes), batch):
        ranking = gallery.rank(probes[start : start + batch], top_k, score)
        out[start : start + batch] = ranking.first_above_floor(floor)[0]
    return out


def supported_target_problem(
    target: float, cohort_size: int, min_false_alerts: int = MIN_FALSE_ALERTS_PER_TARGET
) -> str | None:
    """Why ``target`` cannot be calibrated with ``cohort_size`` non-mated faces, or None."""
    return target_problem(target) or cohort_problem(cohort_size, target, min_false_alerts)


def lowest_threshold(score: str, floor: float) -> float:
    """The lowest threshold a score kind allows: the cosine floor, or 0 for S-norm."""
    lowest = threshold_range(score)[0]
    return max(lowest, floor) if score == "cosine" else lowest


def choose_threshold(
    nonmated_alert_scores: npt.NDArray[np.floating],
    target: float,
    score: str,
    floor: float,
    min_false_alerts: int = MIN_FALSE_ALERTS_PER_TARGET,
) -> ThresholdChoice:
    """The lowest threshold at which at most ⌊target·n⌋ of the n faces alert.

    TargetNotSupported (one line) when ``target`` is not in (0, 1], the cohort has fewer
    than ``min_false_alerts``/target faces (3 for a calibration; the evaluation reports
    from 1), or the threshold would leave the score kind's range.
    """
    scores = np.asarray(nonmated_alert_scores, np.float64)
    n = len(scores)
    if (problem := supported_target_problem(target, n, min_false_alerts)) is not None:
        raise TargetNotSupported(problem)
    allowed = math.floor(target * n + 1e-9)
    ordered = np.sort(scores)[::-1]
    lowest, highest = lowest_threshold(score, floor), threshold_range(score)[1]
    threshold = lowest
    if allowed < n and math.isfinite(ordered[allowed]):
        # Just above the (allowed+1)-th highest alert score, on the grid.
        threshold = max(lowest, math.floor(ordered[allowed] / GRID + 1) * GRID)
    threshold = round(threshold, 4)
    while (scores >= threshold).sum() > allowed:  # a score that sat exactly on the grid
        threshold = round(threshold + GRID, 4)
    if threshold > highest:
        raise TargetNotSupported(
            f"target_fpir {target:.3g} needs a {score} threshold above {highest:g}"
        )
    k = int((scores >= threshold).sum())
    lo, hi = wilson_interval(k, n)
    cal = Calibration(cohort_size=n, false_alerts=k, fpir=k / n, fpir_ci95=(lo, hi))
    return ThresholdChoice(target, score, threshold, floor, cal)


__all__ = [
    "MIN_FALSE_ALERTS_PER_TARGET",
    "TargetNotSupported",
    "ThresholdChoice",
    "alert_scores",
    "choose_threshold",
    "lowest_threshold",
    "supported_target_problem",
    "wilson_interval",
]
