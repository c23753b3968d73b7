"""Which text lines may be a number plate, and the plate region around them.

A text line is a plate candidate when it lies in the region of interest, is tall enough
to read (``min_text_height_px``), is within 30° of level and has the proportions of a
plate's characters (2 to 7 characters: between 1.2 and 9 times as long as high). Two
lines stacked like the two rows of a square plate (similar height and width, one just
below the other) make one two-row candidate, read top row first. The plate region is
the text grown to the plate's border (margins of a UK plate: about a third of the
character height around the characters); its background colour is classed as yellow
(a rear plate), white (a front plate) or other, for the operator.

Whether a candidate is a plate is decided after reading: by the UK format rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from agent.camera.frame_source import BgrImage
from agent.plates.text_detector import FloatArray, TextBox

MIN_ASPECT = 1.2
MAX_ASPECT = 9.0
MAX_TILT_DEG = 30.0
#: The plate's margin around its characters, as a share of the character height.
PLATE_MARGIN = 0.35


@dataclass(frozen=True)
class PlateCandidate:
    """One or two text lines (top row first) and the plate region around them."""

    lines: tuple[TextBox, ...]
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels, clipped

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.region
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0

    @property
    def width(self) -> float:
        return float(self.region[2] - self.region[0])

    @property
    def height(self) -> float:
        return float(self.region[3] - self.region[1])


def _in_roi(box: TextBox, roi: Sequence[float], w: int, h: int) -> bool:
    if not roi:
        return True
    cx, cy = box.centre
    return roi[0] * w <= cx <= roi[2] * w and roi[1] * h <= cy <= roi[3] * h


def _plausible(box: TextBox, min_height: float) -> bool:
    aspect = box.length / max(box.height, 1e-6)
    return (
        box.height >= min_height
        and MIN_ASPECT <= aspect <= MAX_ASPECT
        and abs(box.angle_deg) <= MAX_TILT_DEG
    )


def _region(quads: Sequence[FloatArray], char_height: float, w: int, h: int) -> tuple[int, ...]:
    pts = np.concatenate(list(quads), axis=0)
    m = PLATE_MARGIN * char_height
    x0 = int(max(0, np.floor(pts[:, 0].min() - m)))
    y0 = int(max(0, np.floor(pts[:, 1].min() - m)))
    x1 = int(min(w, np.ceil(pts[:, 0].max() + m)))
    y1 = int(min(h, np.ceil(pts[:, 1].max() + m)))
    return x0, y0, x1, y1


def _stacked(top: TextBox, bottom: TextBox) -> bool:
    """Two rows of one square plate: similar height, overlapping columns, one just under."""
    if not 0.6 <= top.height / max(bottom.height, 1e-6) <= 1.6:
        return False
    tx0, _, tx1, ty1 = top.bounds()
    bx0, by0, bx1, _ = bottom.bounds()
    overlap = min(tx1, bx1) - max(tx0, bx0)
    if overlap < 0.5 * min(tx1 - tx0, bx1 - bx0):
        return False
    gap = by0 - ty1
    return -0.3 * top.height <= gap <= 0.8 * top.height


def find_candidates(
    boxes: Sequence[TextBox],
    frame_size: tuple[int, int],
    *,
    min_text_height_px: float,
    roi: Sequence[float] = (),
) -> list[PlateCandidate]:
    """Plate candidates among a frame's text lines (``frame_size`` is width, height)."""
    w, h = frame_size
    usable = [b for b in boxes if _in_roi(b, roi, w, h) and _plausible(b, min_text_height_px)]
    usable.sort(key=lambda b: b.centre[1])
    used: set[int] = set()
    out: list[PlateCandidate] = []
    for i, top in enumerate(usable):
        if i in used:
            continue
        pair = next(
            (j for j in range(i + 1, len(usable)) if j not in used and _stacked(top, usable[j])),
            None,
        )
        if pair is not None:
            used |= {i, pair}
            lines: tuple[TextBox, ...] = (top, usable[pair])
        else:
            used.add(i)
            lines = (top,)
        height = max(b.height for b in lines)
        region = _region([b.quad for b in lines], height, w, h)
        if region[2] > region[0] and region[3] > region[1]:
            out.append(PlateCandidate(lines, region))  # type: ignore[arg-type]
    return out


def background_colour(image: BgrImage, candidate: PlateCandidate) -> str:
    """ "yellow", "white" or "other": the plate's background around its characters."""
    x0, y0, x1, y1 = candidate.region
    patch = image[y0:y1, x0:x1]
    if patch.size == 0:
        return "other"
    hsv = cv2.cvtColor(patch, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.float32)
    # The background is the brighter half of the plate (the characters are dark).
    v = hsv[:, 2]
    bright = hsv[v >= np.median(v)]
    hue, sat, val = (float(np.median(bright[:, k])) for k in range(3))
    if sat >= 90 and 15 <= hue <= 40 and val >= 90:
        return "yellow"
    if sat < 60 and val >= 140:
        return "white"
    return "other"
