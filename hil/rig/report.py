"""The rig report: ``report.json`` (everything measured), ``report.md`` and ``report.html``
(for people), and two PNG plots drawn with OpenCV: the alert latency histogram and the
per-scenario verdict chart. ``summary_table`` is the table printed at the end of a run.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from hil.rig.scenarios.scenario_support import FAIL, NOT_RUN, PASS, ScenarioResult

LATENCY_PNG = "latency_histogram.png"
VERDICT_PNG = "verdicts.png"
COLOURS = {PASS: (80, 170, 60), FAIL: (50, 50, 210), NOT_RUN: (150, 150, 150)}  # BGR
KEY_FIGURES = {
    "activation_compliance": ("max_close_lag_s", "expiry_close_lag_s", "stop_close_lag_s"),
    "alert_latency": ("p50_s", "p95_s", "max_s", "samples"),
    "detection_quality": ("tpir", "alerted", "false_alerts_per_hour"),
    "faults": ("alerts_sealed", "alerts_stored", "lost", "duplicated"),
    "retention": ("wipe_after_stop_s", "report_after_stop_s"),
    "privacy": ("files_outside_state", "files_in_private_tmp", "packets_not_to_broker"),
}

Canvas = npt.NDArray[np.uint8]


def _key_figures(r: ScenarioResult) -> str:
    names = KEY_FIGURES.get(r.name, tuple(r.figures)[:4])
    parts = [f"{n}={r.figures[n]}" for n in names if n in r.figures]
    not_run = [c.name for c in r.checks if c.verdict == NOT_RUN]
    if not_run:
        parts.append("not run: " + ", ".join(not_run))
    return "; ".join(parts)


def summary_table(results: list[ScenarioResult]) -> str:
    rows = [("scenario", "verdict", "key figures")]
    rows += [(r.name, r.verdict.upper(), _key_figures(r)) for r in results]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"| {a:<{w0}} | {b:<{w1}} | {c} |" for a, b, c in rows]
    lines.insert(1, f"|{'-' * (w0 + 2)}|{'-' * (w1 + 2)}|---|")
    return "\n".join(lines)


def _text(img: Canvas, s: str, org: tuple[int, int], scale: float = 0.45) -> None:
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (40, 40, 40), 1, cv2.LINE_AA)


def draw_latency_histogram(samples: list[float], width: int = 640, height: int = 360) -> Canvas:
    """Histogram of alert latencies (seconds), p50 and p95 marked."""
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 50, 20, 30, 40
    _text(img, "alert latency: first appearance -> stored at hub (s)", (left, 20))
    cv2.line(img, (left, height - bottom), (width - right, height - bottom), (0, 0, 0), 1)
    cv2.line(img, (left, top), (left, height - bottom), (0, 0, 0), 1)
    if not samples:
        _text(img, "no samples", (width // 2 - 40, height // 2))
        return img
    # About 20 bins over the range seen, on a 1-2-5 step so the axis reads easily.
    span = max(samples) * 1.15
    bin_s = next(b for b in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10) if span / b <= 25)
    n_bins = max(5, math.ceil(span / bin_s))
    top_s = n_bins * bin_s
    counts = np.bincount(
        np.minimum((np.asarray(samples) / bin_s).astype(int), n_bins - 1), minlength=n_bins
    )
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = int(counts.max())
    for i, c in enumerate(counts):
        x0 = left + round(i * plot_w / n_bins)
        x1 = left + round((i + 1) * plot_w / n_bins) - 1
        y = height - bottom - round(c * plot_h / peak)
        if c:
            cv2.rectangle(img, (x0, y), (x1, height - bottom), (200, 130, 60), -1)
    for k in range(peak + 1):
        y = height - bottom - round(k * plot_h / peak)
        _text(img, str(k), (left - 20, y + 4), 0.35)
    step = max(1, round(n_bins / 8))
    for i in range(0, n_bins + 1, step):
        x = left + round(i * plot_w / n_bins)
        _text(img, f"{i * bin_s:g}", (x - 8, height - bottom + 15), 0.35)
    ordered = sorted(samples)
    for q, colour in ((50, (60, 160, 60)), (95, (40, 40, 200))):
        v = ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
        x = left + round(v / top_s * plot_w)
        cv2.line(img, (x, top), (x, height - bottom), colour, 1)
        _text(img, f"p{q} {v:.2f}", (min(x + 3, width - 90), top + 12 + (q == 95) * 14), 0.4)
    return img


def draw_verdicts(results: list[ScenarioResult], width: int = 640) -> Canvas:
    """One row per scenario: its checks as coloured cells (green pass, red fail, grey not run)."""
    row_h, left, top = 30, 180, 30
    height = top + row_h * max(1, len(results)) + 20
    img = np.full((height, width, 3), 255, np.uint8)
    _text(img, "verdicts per scenario (one cell per check)", (10, 20))
    widest = max((len(r.checks) for r in results), default=1) or 1
    cell = (width - left - 10) / widest
    for i, r in enumerate(results):
        y = top + i * row_h
        cv2.rectangle(img, (5, y + 4), (15, y + row_h - 6), COLOURS[r.verdict], -1)
        _text(img, f"{r.name} {r.verdict.upper()}", (20, y + row_h // 2 + 4), 0.42)
        for k, c in enumerate(r.checks):
            x0 = left + round(k * cell)
            cv2.rectangle(
                img,
                (x0 + 1, y + 4),
                (left + round((k + 1) * cell) - 2, y + row_h - 4),
                COLOURS[c.verdict],
                -1,
            )
    return img


def _markdown(meta: dict[str, Any], results: list[ScenarioResult], plots: list[str]) -> str:
    out = [f"# HIL rig report: {meta['rig']}", ""]
    out += [f"- {k}: {v}" for k, v in meta.items() if k != "rig"]
    out += ["", "## Summary", "", summary_table(results), ""]
    out += [f"![{p}]({p})" for p in plots]
    for r in results:
        out += ["", f"## {r.title} — {r.verdict.upper()}", ""]
        out += [f"- **{c.verdict}** {c.name}: {c.detail}" for c in r.checks]
        if r.figures:
            out += ["", "| figure | value |", "|---|---|"]
            out += [f"| {k} | {v} |" for k, v in r.figures.items()]
        out += [f"- note: {n}" for n in r.notes]
    return "\n".join(out) + "\n"


def _html(markdown_text: str, results: list[ScenarioResult], plots: list[str]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td style='color:"
        f"{'#2a2' if r.verdict == PASS else '#c22' if r.verdict == FAIL else '#888'}'>"
        f"{r.verdict.upper()}</td><td>{html.escape(_key_figures(r))}</td></tr>"
        for r in results
    )
    imgs = "".join(f"<p><img src='{p}' alt='{p}'></p>" for p in plots)
    return (
        "<!doctype html><meta charset='utf-8'><title>HIL rig report</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px}</style>"
        f"<table><tr><th>scenario</th><th>verdict</th><th>key figures</th></tr>{rows}</table>"
        f"{imgs}<pre>{html.escape(markdown_text)}</pre>"
    )


def write_report(out_dir: Path, meta: dict[str, Any], results: list[ScenarioResult]) -> Path:
    """Write report.json, report.md, report.html and the PNGs; return the JSON path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    latency = [v for r in results for v in r.samples.get("latency_s", [])]
    plots = []
    for name, image in (
        (LATENCY_PNG, draw_latency_histogram(latency)),
        (VERDICT_PNG, draw_verdicts(results)),
    ):
        if not cv2.imwrite(str(out_dir / name), image):
            raise OSError(f"cannot write {out_dir / name}")
        plots.append(name)
    verdicts = [r.verdict for r in results]
    overall = FAIL if FAIL in verdicts or not results else PASS
    body = {
        **meta,
        "verdict": overall,
        "scenarios": [r.to_json() for r in results],
        "plots": plots,
    }
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(body, indent=1, default=str) + "\n", encoding="utf-8")
    md = _markdown({**meta, "verdict": overall}, results, plots)
    (out_dir / "report.md").write_text(md, encoding="utf-8")
    (out_dir / "report.html").write_text(_html(md, results, plots), encoding="utf-8")
    return json_path
