"""The verdict on growth: a least-squares line through the second half of a run (after
warm-up and after the faults), its slope projected to 12 hours, against a budget.

A snapshot says nothing about a leak (a daemon at 300 MB may be fine, one at 200 MB and
rising by 1 MB an hour is not); the slope over the steady part of the run does. Only
growth fails a budget: memory handed back, or an outbox that drains, is not a problem.

Budget kinds:

``relative``  projected growth over 12 h as a percentage of the mean level in the window
              (memory: "RSS grows by less than 5 % in 12 h");
``absolute``  projected growth over 12 h in the resource's own unit (descriptors,
              threads, files, megabytes);
``decline``   projected *fall* over 12 h as a percentage of the mean (throughput: frames
              per second must not sink);
``per``       growth per unit of another resource's growth in the window (hub database
              megabytes per alert stored: the database grows with the alerts it keeps,
              by design, and must not grow faster);
``info``      figures only, no verdict.

Rates measured over a 10-second interval (CPU use, log lines per minute, frames per
second) jump from sample to sample far more than a level such as memory does. Their
budgets carry ``noise_se``: the slope is first moved that many standard errors towards
zero, so only growth that sampling noise cannot explain counts (with 2, a flat but noisy
CPU curve passes; a climbing one still fails). Levels keep ``noise_se = 0``: any slope
of theirs counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PROJECTION_H = 12.0
#: Fewer samples than this in the window: no line can be trusted, and a run that measured
#: nothing must not pass.
MIN_WINDOW_SAMPLES = 6
PASS, FAIL, INFO = "pass", "fail", "info"
KINDS = ("relative", "absolute", "decline", "per", "info")

Point = tuple[float, float | None]  # (seconds since the run started, value or a gap)


@dataclass(frozen=True)
class Budget:
    kind: str
    limit: float = 0.0
    per: str = ""  # the other resource, for kind "per"
    noise_se: float = 0.0  # standard errors of the slope forgiven as noise (rates only)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"budget kind {self.kind!r}: one of {', '.join(KINDS)}")
        if self.kind == "per" and not self.per:
            raise ValueError("a 'per' budget names the resource it is per")
        if not 0.0 <= self.noise_se <= 5.0:
            raise ValueError(f"noise_se {self.noise_se:g}: between 0 and 5 standard errors")

    def describe(self, unit: str) -> str:
        if self.kind == "relative":
            return f"growth < {self.limit:g} % in {PROJECTION_H:g} h"
        if self.kind == "absolute":
            return f"growth < {self.limit:g} {unit} in {PROJECTION_H:g} h"
        if self.kind == "decline":
            return f"fall < {self.limit:g} % in {PROJECTION_H:g} h"
        if self.kind == "per":
            return f"< {self.limit:g} {unit} per {self.per}"
        return "figures only"


@dataclass(frozen=True)
class Line:
    """A least-squares line over a window: value ≈ level_at_start + slope_per_h · hours."""

    samples: int
    window_s: tuple[float, float]
    mean: float
    slope_per_h: float
    stderr_per_h: float  # standard error of the slope (noise, for the reader)

    @property
    def projected(self) -> float:
        return self.slope_per_h * PROJECTION_H


@dataclass(frozen=True)
class Growth:
    resource: str
    unit: str
    budget: Budget
    line: Line | None
    verdict: str
    detail: str

    def to_json(self) -> dict[str, object]:
        ln = self.line
        return {
            "resource": self.resource,
            "unit": self.unit,
            "budget": self.budget.describe(self.unit),
            "verdict": self.verdict,
            "detail": self.detail,
            "samples": ln.samples if ln else 0,
            "window_s": list(ln.window_s) if ln else None,
            "mean": _round(ln.mean) if ln else None,
            "slope_per_h": _round(ln.slope_per_h) if ln else None,
            "stderr_per_h": _round(ln.stderr_per_h) if ln else None,
            "projected_12h": _round(ln.projected) if ln else None,
        }


def _unbounded(projected: float) -> float:
    """Growth from a zero level: infinitely many per cent if it grows at all."""
    return math.inf if projected > 0 else 0.0


def _round(v: float) -> float:
    return float(f"{v:.4g}") if math.isfinite(v) else v


def second_half(points: Sequence[Point], run_s: float) -> list[tuple[float, float]]:
    """The samples (gaps left out) of the second half of a run of ``run_s`` seconds."""
    start = run_s / 2.0
    return [(t, v) for t, v in points if v is not None and start <= t <= run_s]


def fit_line(window: Sequence[tuple[float, float]]) -> Line | None:
    """Least squares over ``window``; None with fewer than two distinct times."""
    if len(window) < 2:
        return None
    t = np.array([p[0] for p in window], dtype=float) / 3600.0
    v = np.array([p[1] for p in window], dtype=float)
    dt = t - t.mean()
    sxx = float(np.dot(dt, dt))
    if sxx <= 0.0:
        return None
    slope = float(np.dot(dt, v - v.mean())) / sxx
    residuals = v - (v.mean() + slope * dt)
    dof = len(window) - 2
    stderr = math.sqrt(float(np.dot(residuals, residuals)) / dof / sxx) if dof > 0 else math.inf
    return Line(
        samples=len(window),
        window_s=(float(window[0][0]), float(window[-1][0])),
        mean=float(v.mean()),
        slope_per_h=slope,
        stderr_per_h=stderr,
    )


def judge(
    resource: str,
    unit: str,
    points: Sequence[Point],
    budget: Budget,
    run_s: float,
    per_points: Sequence[Point] = (),
) -> Growth:
    """The verdict on one resource over the second half of a run of ``run_s`` seconds."""
    window = second_half(points, run_s)
    line = fit_line(window)
    if budget.kind == "info":
        return Growth(resource, unit, budget, line, INFO, "")
    if line is None or line.samples < MIN_WINDOW_SAMPLES:
        n = line.samples if line else len(window)
        return Growth(
            resource,
            unit,
            budget,
            line,
            FAIL,
            f"only {n} samples in the second half (at least {MIN_WINDOW_SAMPLES} needed)",
        )
    projected = line.projected
    if budget.noise_se > 0 and math.isfinite(line.stderr_per_h):
        allowance = budget.noise_se * line.stderr_per_h * PROJECTION_H
        # Towards zero from whichever side the budget cares about.
        if budget.kind == "decline":
            projected = min(0.0, projected + allowance)
        else:
            projected = max(0.0, projected - allowance)
    if budget.kind == "relative":
        pct = 100.0 * projected / line.mean if line.mean > 0 else _unbounded(projected)
        ok = pct < budget.limit
        detail = f"{projected:+.3g} {unit} in 12 h = {pct:+.2f} % of {line.mean:.4g} {unit}"
    elif budget.kind == "absolute":
        ok = projected < budget.limit
        detail = f"{projected:+.3g} {unit} in 12 h"
    elif budget.kind == "decline":
        pct = 100.0 * projected / line.mean if line.mean > 0 else 0.0
        ok = pct > -budget.limit
        detail = f"{projected:+.3g} {unit} in 12 h = {pct:+.2f} % of {line.mean:.4g} {unit}"
    else:
        other = fit_line(second_half(per_points, run_s))
        if other is None or other.slope_per_h <= 0:
            # No growth of the other resource in the window: any growth of this one is
            # growth without a cause.
            ok = projected < budget.limit
            detail = f"{projected:+.3g} {unit} in 12 h while {budget.per} did not grow"
        else:
            ratio = projected / PROJECTION_H / other.slope_per_h
            ok = ratio < budget.limit
            detail = f"{ratio:.3g} {unit} per {budget.per} ({projected:+.3g} {unit} in 12 h)"
    if budget.noise_se > 0:
        detail += f" (beyond {budget.noise_se:g} s.e. of noise; fitted {line.projected:+.3g})"
    return Growth(resource, unit, budget, line, PASS if ok else FAIL, detail)
