"""The fleet simulator's results: one ``StepResult`` per fleet size, as a Markdown table,
JSON, and a PNG of how latency and hub cost grow with the number of cameras (drawn with
OpenCV, like the DET chart, so no plotting library is needed)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL_W, PANEL_H = 520, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 50, 60
COLOURS = [(200, 90, 20), (30, 30, 210), (40, 150, 40), (150, 40, 150)]


@dataclass
class StepResult:
    """One run of the fleet at one size."""

    cameras: int
    hub_workers: int
    seconds: float
    sent: int
    stored: int
    duplicated: int
    lost: int
    phantom: int
    redeliveries: int
    latency_p50_s: float
    latency_p95_s: float
    latency_p99_s: float
    latency_max_s: float
    hub_cpu_core: float
    hub_peak_mb: float
    postgres_cpu_core: float
    postgres_peak_mb: float
    broker_cpu_core: float
    broker_peak_mb: float
    cameras_cpu_core: float
    feed_p50_ms: float | None
    feed_p95_ms: float | None
    faults: list[str] = field(default_factory=list)

    @property
    def hub_cpu_per_100(self) -> float:
        """Hub workers' CPU, in % of one core, per 100 cameras."""
        return 100.0 * self.hub_cpu_core * 100.0 / self.cameras

    @property
    def hub_mb_per_100(self) -> float:
        return self.hub_peak_mb * 100.0 / self.cameras


def table(results: Sequence[StepResult]) -> str:
    head = (
        "| cameras | alerts sent | stored | duplicated | lost | redeliveries absorbed "
        "| latency p50 / p95 / p99 (max) s | hub workers CPU % of a core (per 100 cameras) "
        "| hub workers memory MB (per 100 cameras) | PostgreSQL CPU % / MB | broker CPU % / MB "
        "| change feed p50 / p95 ms |\n"
        "|---:|---:|---:|---:|---:|---:|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in results:
        feed = (
            f"{r.feed_p50_ms:.1f} / {r.feed_p95_ms:.1f}"
            if r.feed_p50_ms is not None and r.feed_p95_ms is not None
            else "–"
        )
        rows.append(
            f"| {r.cameras} | {r.sent} | {r.stored} | {r.duplicated} | {r.lost} "
            f"| {r.redeliveries} "
            f"| {r.latency_p50_s:.3f} / {r.latency_p95_s:.3f} / {r.latency_p99_s:.3f} "
            f"({r.latency_max_s:.1f}) "
            f"| {100 * r.hub_cpu_core:.1f} ({r.hub_cpu_per_100:.1f}) "
            f"| {r.hub_peak_mb:.0f} ({r.hub_mb_per_100:.1f}) "
            f"| {100 * r.postgres_cpu_core:.1f} / {r.postgres_peak_mb:.0f} "
            f"| {100 * r.broker_cpu_core:.1f} / {r.broker_peak_mb:.0f} | {feed} |"
        )
    return head + "\n".join(rows) + "\n"


def write_json(path: Path, results: Sequence[StepResult], extra: dict[str, object]) -> None:
    steps = [
        {**asdict(r), "hub_cpu_per_100": r.hub_cpu_per_100, "hub_mb_per_100": r.hub_mb_per_100}
        for r in results
    ]
    path.write_text(json.dumps({**extra, "steps": steps}, indent=1), encoding="utf-8")


def _panel(
    title: str,
    xs: Sequence[int],
    series: dict[str, list[float]],
    y_label: str,
) -> npt.NDArray[np.uint8]:
    img = np.full((PANEL_H, PANEL_W, 3), 255, np.uint8)
    x0, x1, y0, y1 = LEFT, PANEL_W - RIGHT, TOP, PANEL_H - BOTTOM
    lo, hi = math.log10(min(xs)), math.log10(max(xs))
    span = hi - lo or 1.0
    top = max((v for vs in series.values() for v in vs if math.isfinite(v)), default=1.0)
    top = top * 1.15 or 1.0

    def px(x: float) -> int:
        return round(x0 + (math.log10(x) - lo) / span * (x1 - x0)) if hi > lo else (x0 + x1) // 2

    def py(y: float) -> int:
        return round(y1 - y / top * (y1 - y0))

    for k in range(6):
        v = top * k / 5
        cv2.line(img, (x0, py(v)), (x1, py(v)), (230, 230, 230), 1)
        cv2.putText(img, f"{v:.3g}", (5, py(v) + 5), FONT, 0.42, (60, 60, 60), 1, cv2.LINE_AA)
    for x in xs:
        cv2.line(img, (px(x), y0), (px(x), y1), (230, 230, 230), 1)
        cv2.putText(img, str(x), (px(x) - 12, y1 + 20), FONT, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y0), (x1, y1), (80, 80, 80), 1)
    cv2.putText(img, title, (x0, 22), FONT, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, y_label, (x0, 42), FONT, 0.42, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, "cameras (log scale)", (x0 + 120, PANEL_H - 15), FONT, 0.45, 0, 1, cv2.LINE_AA)
    for k, (label, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        pts = [(px(x), py(v)) for x, v in zip(xs, values, strict=True) if math.isfinite(v)]
        if len(pts) >= 2:
            cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 4, colour, -1, cv2.LINE_AA)
        ly = y0 + 18 + 18 * k
        cv2.line(img, (x0 + 10, ly - 5), (x0 + 35, ly - 5), colour, 2)
        cv2.putText(img, label, (x0 + 42, ly), FONT, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def save_png(path: Path, results: Sequence[StepResult]) -> None:
    xs = [r.cameras for r in results]
    latency = _panel(
        "End-to-end alert latency",
        xs,
        {
            "p50": [r.latency_p50_s for r in results],
            "p95": [r.latency_p95_s for r in results],
            "p99": [r.latency_p99_s for r in results],
        },
        "seconds, sealed at the camera to stored at the hub",
    )
    cost = _panel(
        "Hub workers' cost per 100 cameras",
        xs,
        {
            "CPU, % of one core": [r.hub_cpu_per_100 for r in results],
            "memory, MB": [r.hub_mb_per_100 for r in results],
        },
        "per 100 cameras",
    )
    img = np.hstack([latency, cost])
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    path.write_bytes(buf.tobytes())


def read_json(path: Path) -> list[StepResult]:
    """The steps of a ``report.json`` written by ``write_json``."""
    names = set(StepResult.__dataclass_fields__)
    steps = json.loads(path.read_text(encoding="utf-8"))["steps"]
    return [StepResult(**{k: v for k, v in s.items() if k in names}) for s in steps]


def main(argv: Sequence[str] | None = None) -> int:
    """Merge the reports of separate runs (fleet sizes run one at a time with ``--only``)
    into one table and PNG."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m hil.fleet.scaling_report", description=main.__doc__
    )
    ap.add_argument("png", type=Path, help="PNG to write")
    ap.add_argument("reports", type=Path, nargs="+", help="report.json files")
    args = ap.parse_args(argv)
    results = sorted((r for p in args.reports for r in read_json(p)), key=lambda r: r.cameras)
    save_png(args.png, results)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
