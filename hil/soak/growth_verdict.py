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

A level can also rise and fall on a cycle: the daemon's memory climbs by some 20 MB and
is handed back every time the replay scene loops (about 40 s), as buffers for the people
in it are allocated and freed. A straight line through such a curve tilts with where the
window happens to cut the cycle (up to ±170 MB in 12 h over a 5-minute window of a 24 MB,
40 s sawtooth), which is noise, not growth. So a level whose detrended samples repeat
(autocorrelation above ``MIN_CYCLE_CORRELATION`` at some lag) is first averaged over whole
cycles, counted back from the end of the window, and the line goes through the cycle
means: a cycle that comes back to where it was then has no slope at all, and a leak under
it still shows, cycle after cycle.

Rates measured over a 10-second interval (CPU use, log lines per minute, frames per
second) jump from sample to sample far more than a level such as memory does, and on a
shared machine they also drift with everyone else's load for minutes at a time, so
neighbouring samples are not independent and their scatter understates the noise. A
rate is therefore averaged over ``RATE_BLOCKS`` consecutive blocks of the window first
and the line and its standard error come from the block
means. Their budgets carry ``noise_se``: the slope is moved that many standard errors
towards zero, so only growth that the noise cannot explain counts (with 2, a flat
curve under a machine whose load comes and goes passes; one that climbs block after
block still fails). Levels in the full table keep ``noise_se = 0``: any slope of theirs
counts. The short table's memory budgets carry ``noise_se`` too: five minutes of a
sawtooth resolve a slope only to tens of megabytes in 12 h, and the short form is there
to catch gross leaks, which stand far beyond that noise.

Counts of things a process holds (open descriptors, threads) are judged on their floor:
the least value in each block of ``FLOOR_BLOCK_S`` seconds. A descriptor or thread that
leaks stays and lifts every later floor; one that lives for a moment (a reconnect, a
file opened and closed between two samples) does not, and must not tilt the line.
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
#: Detrended samples that correlate this well with themselves one cycle later are a cycle.
MIN_CYCLE_CORRELATION = 0.5
#: At least this many whole cycles in the window, or the samples are fitted as they are.
MIN_CYCLES = 3
#: Rates are averaged over this many blocks of the window before the fit.
RATE_BLOCKS = 10
#: Counts are judged on their least value in each block of this many seconds.
FLOOR_BLOCK_S = 60.0
PASS, FAIL, INFO = "pass", "fail", "info"
KINDS = ("relative", "absolute", "decline", "per", "info")

Point = tuple[float, float | None]  # (seconds since the run started, value or a gap)


@dataclass(frozen=True)
class Budget:
    kind: str
    limit: float = 0.0
    per: str = ""  # the other resource, for kind "per"
    noise_se: float = 0.0  # standard errors of the slope forgiven as noise
    rate: bool = False  # a rate over an interval: fitted through block means
    floor: bool = False  # judge the least value of each minute (counts a process holds)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"budget kind {self.kind!r}: one of {', '.join(KINDS)}")
        if self.kind == "per" and not self.per:
            raise ValueError("a 'per' budget names the resource it is per")
        if not 0.0 <= self.noise_se <= 5.0:
            raise ValueError(f"noise_se {self.noise_se:g}: between 0 and 5 standard errors")
        if self.floor and self.noise_se:
            raise ValueError("a budget is on a count's floor or on a noisy rate, not both")

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
    cycle_samples: int = 0  # samples per cycle averaged before the fit; 0: none found
    block_samples: int = 0  # samples per block of a rate's means or a count's floors

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
            "cycle_samples": ln.cycle_samples if ln else 0,
            "block_samples": ln.block_samples if ln else 0,
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


def cycle_length(values: Sequence[float]) -> int | None:
    """Samples per cycle of a level that repeats (the lag of the strongest autocorrelation
    of its detrended samples, if above ``MIN_CYCLE_CORRELATION``); None if it does not."""
    n = len(values)
    if n < 2 * MIN_CYCLES:
        return None
    v = np.asarray(values, dtype=float)
    x = np.arange(n, dtype=float)
    d = v - np.polyval(np.polyfit(x, v, 1), x)
    energy = float(np.dot(d, d))
    if energy <= 1e-12:
        return None
    lags = range(2, n // MIN_CYCLES + 1)
    r = [float(np.dot(d[:-lag], d[lag:])) / energy * n / (n - lag) for lag in lags]
    if not r or max(r) < MIN_CYCLE_CORRELATION:
        return None
    # Two, three cycles correlate as well as one: the shortest that nearly matches the best.
    near = max(MIN_CYCLE_CORRELATION, 0.9 * max(r))
    return next(lag for lag, c in zip(lags, r, strict=True) if c >= near)


def cycle_means(window: Sequence[tuple[float, float]]) -> tuple[list[tuple[float, float]], int]:
    """The window averaged over whole cycles counted back from its end, and the cycle
    length in samples; the window itself and 0 when its samples do not repeat."""
    length = cycle_length([v for _, v in window])
    if length is None:
        return list(window), 0
    cycles = len(window) // length
    tail = window[len(window) - cycles * length :]
    means = [
        (
            float(np.mean([t for t, _ in tail[i : i + length]])),
            float(np.mean([v for _, v in tail[i : i + length]])),
        )
        for i in range(0, len(tail), length)
    ]
    return means, length


def fit_level(window: Sequence[tuple[float, float]]) -> Line | None:
    """``fit_line`` through the cycle means of a level (``cycle_means``), reporting the
    window's own sample count and span."""
    means, length = cycle_means(window)
    if not length:
        return fit_line(window)
    line = fit_line(means)
    if line is None:
        return fit_line(window)
    return Line(
        samples=len(window),
        window_s=(float(window[0][0]), float(window[-1][0])),
        mean=line.mean,
        slope_per_h=line.slope_per_h,
        stderr_per_h=line.stderr_per_h,
        cycle_samples=length,
    )


def _blocks(
    window: Sequence[tuple[float, float]], length: int, least: bool
) -> list[tuple[float, float]]:
    """Consecutive blocks of ``length`` samples counted back from the window's end (a
    partial block at its start is left out): each as (mean time, mean or least value)."""
    whole = len(window) // length
    tail = window[len(window) - whole * length :]
    out = []
    for i in range(0, len(tail), length):
        block = tail[i : i + length]
        values = [v for _, v in block]
        out.append(
            (
                float(np.mean([t for t, _ in block])),
                min(values) if least else float(np.mean(values)),
            )
        )
    return out


def _spacing_s(window: Sequence[tuple[float, float]]) -> float:
    return (window[-1][0] - window[0][0]) / max(1, len(window) - 1)


def fit_blocks(window: Sequence[tuple[float, float]], least: bool = False) -> Line | None:
    """``fit_line`` through block means (rates: ``RATE_BLOCKS`` blocks) or block floors
    (counts: ``FLOOR_BLOCK_S`` each), reporting the window's own sample count and span."""
    if len(window) < 2:
        return fit_line(window)
    # No cycle search for rates: load that persists for a while correlates with itself at
    # a short lag just as a cycle does, and blocks of a tenth of the window span any
    # cycle the scene has anyway.
    if least:
        length = max(1, round(FLOOR_BLOCK_S / max(_spacing_s(window), 1e-9)))
    else:
        length = max(1, len(window) // RATE_BLOCKS)
    blocks = _blocks(window, length, least)
    line = fit_line(blocks) if len(blocks) >= 3 else None
    if line is None:
        return fit_line(window)
    return Line(
        samples=len(window),
        window_s=(float(window[0][0]), float(window[-1][0])),
        mean=float(np.mean([v for _, v in window])),
        slope_per_h=line.slope_per_h,
        stderr_per_h=line.stderr_per_h,
        block_samples=length,
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
    # Rates are fitted through block means (their noise allowance comes from those),
    # counts through block floors; levels are averaged over a cycle first, if they have
    # one.
    if budget.floor:
        line = fit_blocks(window, least=True)
    elif budget.rate:
        line = fit_blocks(window)
    elif budget.kind in ("relative", "absolute"):
        line = fit_level(window)
    else:
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
    if budget.floor and line.block_samples:
        detail += f" (floor of each {line.block_samples}-sample block)"
    elif budget.rate and line.block_samples:
        detail += f" (means of {line.block_samples}-sample blocks)"
    elif line.cycle_samples:
        detail += f" (over means of {line.cycle_samples}-sample cycles)"
    return Growth(resource, unit, budget, line, PASS if ok else FAIL, detail)
