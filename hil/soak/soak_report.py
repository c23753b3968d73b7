"""The soak's report: the verdict per resource (JSON and Markdown) and a PNG with one
panel per resource, its curve, the fitted line over the second half and the faults.

Drawn with OpenCV (as ``agent/evaluation/det_plot.py`` does), so no plotting library.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from hil.soak.growth_verdict import FAIL, INFO, PASS, Growth, Point, judge
from hil.soak.soak_budgets import RESOURCES

PANEL_W, PANEL_H, COLUMNS = 380, 210, 4
LEFT, RIGHT, TOP, BOTTOM = 62, 12, 34, 26
FONT = cv2.FONT_HERSHEY_SIMPLEX
GREY, BLUE, RED, GREEN, ORANGE = (
    (170, 170, 170),
    (190, 90, 20),
    (30, 30, 210),
    (40, 150, 40),
    (0, 140, 230),
)
VERDICT_COLOUR = {PASS: GREEN, FAIL: RED, INFO: (90, 90, 90)}


@dataclass(frozen=True)
class SoakVerdict:
    table: str
    run_s: float
    growth: list[Growth]
    checks: list[tuple[str, bool, str]]

    @property
    def passed(self) -> bool:
        return all(g.verdict != FAIL for g in self.growth) and all(ok for _, ok, _ in self.checks)


def judge_all(
    points: Mapping[str, Sequence[Point]],
    table: str,
    run_s: float,
    checks: Sequence[tuple[str, bool, str]] = (),
) -> SoakVerdict:
    """Every resource of ``RESOURCES`` judged against ``table``; one never sampled fails."""
    growth = []
    for r in RESOURCES:
        budget = r.budget(table)
        per = points.get(budget.per, ()) if budget.per else ()
        growth.append(judge(r.name, r.unit, points.get(r.name, ()), budget, run_s, per))
    return SoakVerdict(table, run_s, growth, list(checks))


def to_json(
    verdict: SoakVerdict,
    points: Mapping[str, Sequence[Point]],
    events: Sequence[tuple[float, str]],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "verdict": PASS if verdict.passed else FAIL,
        "budgets": verdict.table,
        "run_s": round(verdict.run_s, 1),
        "meta": dict(meta),
        "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in verdict.checks],
        "resources": [g.to_json() for g in verdict.growth],
        "events": [{"t": t, "what": w} for t, w in events],
        "series": {k: [[t, v] for t, v in pts] for k, pts in points.items()},
    }


def _fmt(v: object) -> str:
    return "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def to_markdown(verdict: SoakVerdict, meta: Mapping[str, Any]) -> str:
    lines = [
        f"# Soak report: {'PASS' if verdict.passed else 'FAIL'}",
        "",
        f"Run of {verdict.run_s / 60:.1f} min, budgets `{verdict.table}`, "
        f"verdict on the least-squares slope over the second half, projected to 12 h.",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", "## Faults and flow", "", "| check | result | detail |", "|---|---|---|"]
    lines += [f"| {n} | {'pass' if ok else 'FAIL'} | {d} |" for n, ok, d in verdict.checks]
    lines += [
        "",
        "## Resources",
        "",
        "| resource | verdict | mean (2nd half) | slope /h | ± | projected 12 h | budget | detail |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in verdict.growth:
        j = g.to_json()
        lines.append(
            f"| {g.resource} ({g.unit}) | {g.verdict.upper() if g.verdict == FAIL else g.verdict} "
            f"| {_fmt(j['mean'])} | {_fmt(j['slope_per_h'])} | {_fmt(j['stderr_per_h'])} "
            f"| {_fmt(j['projected_12h'])} | {j['budget']} | {g.detail} |"
        )
    return "\n".join(lines) + "\n"


def _panel(
    name: str,
    label: str,
    pts: Sequence[Point],
    growth: Growth | None,
    run_s: float,
    events: Sequence[float],
) -> npt.NDArray[np.uint8]:
    img = np.full((PANEL_H, PANEL_W, 3), 255, np.uint8)
    x0, x1, y0, y1 = LEFT, PANEL_W - RIGHT, TOP, PANEL_H - BOTTOM
    verdict = growth.verdict if growth else INFO
    cv2.putText(img, f"{label} [{verdict}]", (6, 16), FONT, 0.42, VERDICT_COLOUR[verdict], 1)
    if growth is not None and growth.detail:
        cv2.putText(img, growth.detail[:58], (6, 29), FONT, 0.32, (60, 60, 60), 1)
    cv2.rectangle(img, (x0, y0), (x1, y1), GREY, 1)
    half = x0 + (x1 - x0) // 2
    cv2.line(img, (half, y0), (half, y1), (220, 220, 220), 1)
    vals = [(t, v) for t, v in pts if v is not None and math.isfinite(v)]
    if not vals or run_s <= 0:
        cv2.putText(img, "no samples", (x0 + 10, (y0 + y1) // 2), FONT, 0.4, RED, 1)
        return img
    lo = min(v for _, v in vals)
    hi = max(v for _, v in vals)
    if hi - lo < 1e-9 * max(1.0, abs(hi)):
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad

    def px(t: float, v: float) -> tuple[int, int]:
        return (
            round(x0 + (x1 - x0) * min(1.0, max(0.0, t / run_s))),
            round(y1 - (y1 - y0) * (v - lo) / (hi - lo)),
        )

    for t in events:
        x = px(t, lo)[0]
        cv2.line(img, (x, y0), (x, y1), ORANGE, 1)
    prev: tuple[int, int] | None = None
    last_t = -1.0
    for t, v in pts:
        if v is None or not math.isfinite(v):
            prev = None
            continue
        p = px(t, v)
        if prev is not None and t - last_t < 60:
            cv2.line(img, prev, p, BLUE, 1, cv2.LINE_AA)
        else:
            cv2.circle(img, p, 1, BLUE, -1)
        prev, last_t = p, t
    line = growth.line if growth else None
    if line is not None:
        t_a, t_b = line.window_s
        mid = (t_a + t_b) / 2.0
        for_a = line.mean + line.slope_per_h * (t_a - mid) / 3600.0
        for_b = line.mean + line.slope_per_h * (t_b - mid) / 3600.0
        cv2.line(img, px(t_a, for_a), px(t_b, for_b), VERDICT_COLOUR[verdict], 2, cv2.LINE_AA)
    for v, y in ((hi - pad, y0 + 10), (lo + pad, y1 - 2)):
        cv2.putText(img, f"{v:.4g}", (4, y), FONT, 0.33, (60, 60, 60), 1)
    cv2.putText(img, "0", (x0 - 4, PANEL_H - 10), FONT, 0.33, (60, 60, 60), 1)
    cv2.putText(img, f"{run_s / 60:.0f} min", (x1 - 44, PANEL_H - 10), FONT, 0.33, (60, 60, 60), 1)
    return img


def render_png(
    verdict: SoakVerdict,
    points: Mapping[str, Sequence[Point]],
    events: Sequence[tuple[float, str]],
) -> npt.NDArray[np.uint8]:
    by_name = {g.resource: g for g in verdict.growth}
    fault_times = [t for t, w in events if w.startswith(("fault", "network healed"))]
    panels = [
        _panel(
            r.name,
            f"{r.label} ({r.unit})",
            points.get(r.name, ()),
            by_name.get(r.name),
            verdict.run_s,
            fault_times,
        )
        for r in RESOURCES
    ]
    rows = -(-len(panels) // COLUMNS)
    blank = np.full((PANEL_H, PANEL_W, 3), 255, np.uint8)
    panels += [blank] * (rows * COLUMNS - len(panels))
    grid = np.vstack([np.hstack(panels[i * COLUMNS : (i + 1) * COLUMNS]) for i in range(rows)])
    head = np.full((40, grid.shape[1], 3), 255, np.uint8)
    title = (
        f"soak {verdict.run_s / 60:.0f} min, budgets {verdict.table}: "
        f"{'PASS' if verdict.passed else 'FAIL'}  (orange: faults; thick: fit over the 2nd half)"
    )
    cv2.putText(
        head, title, (8, 27), FONT, 0.6, VERDICT_COLOUR[PASS if verdict.passed else FAIL], 1
    )
    return np.vstack([head, grid])


def write_report(
    out_dir: Path,
    verdict: SoakVerdict,
    points: Mapping[str, Sequence[Point]],
    events: Sequence[tuple[float, str]],
    meta: Mapping[str, Any],
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md, png = out_dir / "soak.json", out_dir / "soak.md", out_dir / "soak.png"
    js.write_text(json.dumps(to_json(verdict, points, events, meta), indent=1) + "\n")
    md.write_text(to_markdown(verdict, meta))
    if not cv2.imwrite(str(png), render_png(verdict, points, events)):
        raise OSError(f"could not write {png}")
    return [js, md, png]
