"""DET curve (FNIR against FPIR, both on log axes) drawn with OpenCV into a PNG.

Drawn by hand so the device needs no plotting library. Rates of exactly 0
cannot sit on a log axis; they are drawn on the axis floor (``RATE_FLOOR``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from agent.errors import LfrError

RATE_FLOOR = 1e-3
WIDTH, HEIGHT = 760, 640
LEFT, RIGHT, TOP, BOTTOM = 90, 30, 50, 80
# BGR, distinct enough for eight curves (four paths × two score kinds).
COLOURS = [
    (200, 90, 20),
    (30, 30, 210),
    (40, 150, 40),
    (150, 40, 150),
    (20, 160, 200),
    (120, 120, 120),
    (0, 0, 0),
    (180, 180, 30),
]
FONT = cv2.FONT_HERSHEY_SIMPLEX

Curve = tuple[npt.NDArray[np.floating], npt.NDArray[np.floating]]  # (fpir, fnir)


def _to_px(rate: float, lo: int, hi: int, invert: bool) -> int:
    r = min(1.0, max(RATE_FLOOR, rate))
    frac = (math.log10(r) - math.log10(RATE_FLOOR)) / -math.log10(RATE_FLOOR)
    return round(hi - frac * (hi - lo)) if invert else round(lo + frac * (hi - lo))


def render_det(curves: Mapping[str, Curve], title: str) -> npt.NDArray[np.uint8]:
    """The DET chart as a BGR image; ``curves`` maps a legend label to (FPIR, FNIR) arrays."""
    img = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    decades = range(round(math.log10(RATE_FLOOR)), 1)
    for d in decades:
        for m in (1, 2, 5):
            v = m * 10.0**d
            if v > 1.0:
                continue
            colour = (200, 200, 200) if m == 1 else (235, 235, 235)
            px = _to_px(v, x0, x1, False)
            py = _to_px(v, y0, y1, True)
            cv2.line(img, (px, y0), (px, y1), colour, 1)
            cv2.line(img, (x0, py), (x1, py), colour, 1)
        label = f"{10.0**d:g}"
        px, py = _to_px(10.0**d, x0, x1, False), _to_px(10.0**d, y0, y1, True)
        cv2.putText(img, label, (px - 14, y1 + 20), FONT, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
        cv2.putText(img, label, (x0 - 52, py + 5), FONT, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y0), (x1, y1), (80, 80, 80), 1)
    cv2.putText(
        img,
        "FPIR (false positive identification rate)",
        (x0 + 90, HEIGHT - 30),
        FONT,
        0.5,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    ylabel = np.full((24, y1 - y0), 255, np.uint8)
    cv2.putText(
        ylabel, "FNIR (false negative identification rate)", (40, 17), FONT, 0.5, 0, 1, cv2.LINE_AA
    )
    img[y0:y1, 10:34] = cv2.cvtColor(
        cv2.rotate(ylabel, cv2.ROTATE_90_COUNTERCLOCKWISE), cv2.COLOR_GRAY2BGR
    )
    cv2.putText(img, title, (x0, 30), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (label, (fpir, fnir)) in enumerate(curves.items()):
        colour = COLOURS[k % len(COLOURS)]
        pts = [
            (_to_px(float(f), x0, x1, False), _to_px(float(n), y0, y1, True))
            for f, n in zip(fpir, fnir, strict=True)
            if not (math.isnan(float(f)) or math.isnan(float(n)))
        ]
        # Collapse repeats so the polyline stays small and steps stay crisp.
        pts = [p for i, p in enumerate(pts) if i == 0 or p != pts[i - 1]]
        if len(pts) >= 2:
            cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 2, cv2.LINE_AA)
        ly = y0 + 22 + 22 * k
        cv2.line(img, (x1 - 230, ly - 5), (x1 - 200, ly - 5), colour, 2)
        cv2.putText(img, label, (x1 - 192, ly), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def save_det_png(path: Path, curves: Mapping[str, Curve], title: str) -> None:
    """Write the DET chart to ``path`` (PNG)."""
    img = render_det(curves, title)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise LfrError(f"eval: cannot encode the DET chart for {path}")
    try:
        Path(path).write_bytes(buf.tobytes())
    except OSError as exc:
        raise LfrError(f"eval: cannot write {path}: {exc.strerror}") from exc
