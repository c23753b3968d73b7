"""Finding lines of text in a frame: the PP-OCR DB text detector.

The model maps a downscaled frame (long side ``long_side``, both sides multiples of 32,
BGR scaled to −1…1) to a per-pixel text probability. Regions above ``threshold`` become
rotated rectangles; each is kept if its mean probability reaches ``box_threshold`` and
is then grown back ("unclipped") by ``area × unclip_ratio / perimeter`` on every side,
because the model marks a shrunk core of each text line. Boxes come back in frame pixels.
Nothing here is specific to plates: ``plate_finder`` decides which lines may be one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.camera.frame_source import BgrImage
from agent.vision.model_store import PinnedModel
from agent.vision.onnx_session import open_session

FloatArray = npt.NDArray[np.float32]

BOX_THRESHOLD = 0.5
UNCLIP_RATIO = 1.6
MAX_CANDIDATES = 200
_MIN_SIDE_PX = 3.0


@dataclass(frozen=True)
class TextBox:
    """A text line: the rotated rectangle around it in frame pixels, and its mean score.

    ``quad`` lists the corners clockwise from the top-left of the text as read;
    ``length`` runs along the text, ``height`` across it.
    """

    quad: FloatArray  # 4 × 2
    score: float
    length: float
    height: float
    angle_deg: float  # of the text direction, −90…90, 0 = horizontal

    @property
    def centre(self) -> tuple[float, float]:
        c = self.quad.mean(axis=0)
        return float(c[0]), float(c[1])

    def bounds(self) -> tuple[float, float, float, float]:
        """Axis-aligned x0, y0, x1, y1."""
        return (
            float(self.quad[:, 0].min()),
            float(self.quad[:, 1].min()),
            float(self.quad[:, 0].max()),
            float(self.quad[:, 1].max()),
        )


def _ordered_quad(rect: tuple[tuple[float, float], tuple[float, float], float]) -> FloatArray:
    """The corners of an OpenCV rotated rectangle, top-left of the text first, clockwise,
    with the long side along the text (text lines are wider than high)."""
    (cx, cy), (w, h), angle = rect
    if h > w:
        w, h, angle = h, w, angle + 90.0
    # Text is read left to right: keep the direction within ±90° of horizontal.
    while angle > 90.0:
        angle -= 180.0
    while angle <= -90.0:
        angle += 180.0
    a = math.radians(angle)
    ux, uy = math.cos(a), math.sin(a)  # along the text
    vx, vy = -uy, ux  # across it, downwards for a level line
    hw, hh = w / 2.0, h / 2.0
    pts = [
        (cx - ux * hw - vx * hh, cy - uy * hw - vy * hh),
        (cx + ux * hw - vx * hh, cy + uy * hw - vy * hh),
        (cx + ux * hw + vx * hh, cy + uy * hw + vy * hh),
        (cx - ux * hw + vx * hh, cy - uy * hw + vy * hh),
    ]
    return np.array(pts, dtype=np.float32)


class TextDetector:
    def __init__(
        self,
        model: PinnedModel,
        *,
        threads: int = 1,
        long_side: int = 640,
        threshold: float = 0.3,
        box_threshold: float = BOX_THRESHOLD,
        unclip_ratio: float = UNCLIP_RATIO,
    ) -> None:
        if long_side % 32:
            raise ValueError("long_side must be a multiple of 32")
        self.model = model
        self.long_side = long_side
        self.threshold = threshold
        self.box_threshold = box_threshold
        self.unclip_ratio = unclip_ratio
        self._session: Any = open_session(model, threads)
        self._input = self._session.get_inputs()[0].name

    def _input_size(self, w: int, h: int) -> tuple[int, int]:
        scale = min(1.0, self.long_side / max(w, h))
        iw = max(32, round(w * scale / 32.0) * 32)
        ih = max(32, round(h * scale / 32.0) * 32)
        return iw, ih

    def detect(self, image: BgrImage) -> list[TextBox]:
        """Text lines in ``image`` (BGR), most confident first."""
        h, w = image.shape[:2]
        iw, ih = self._input_size(w, h)
        small = cv2.resize(image, (iw, ih), interpolation=cv2.INTER_AREA)
        x = (small.astype(np.float32) * (2.0 / 255.0) - 1.0).transpose(2, 0, 1)[None]
        prob = self._session.run(None, {self._input: np.ascontiguousarray(x)})[0][0, 0]
        return self._boxes(prob, w / iw, h / ih)

    def _boxes(self, prob: FloatArray, sx: float, sy: float) -> list[TextBox]:
        mask = cv2.dilate((prob > self.threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        out: list[TextBox] = []
        for contour in contours[:MAX_CANDIDATES]:
            rect = cv2.minAreaRect(contour)
            (w, h) = rect[1]
            if min(w, h) < _MIN_SIDE_PX:
                continue
            score = _mean_score(prob, contour)
            if score < self.box_threshold:
                continue
            grow = (w * h) * self.unclip_ratio / (2.0 * (w + h))
            centre = (float(rect[0][0]), float(rect[0][1]))
            grown = (centre, (w + 2 * grow, h + 2 * grow), float(rect[2]))
            quad = _ordered_quad(grown)
            quad[:, 0] *= sx
            quad[:, 1] *= sy
            length = float(np.linalg.norm(quad[1] - quad[0]))
            height = float(np.linalg.norm(quad[3] - quad[0]))
            d = quad[1] - quad[0]
            angle = math.degrees(math.atan2(float(d[1]), float(d[0])))
            out.append(TextBox(quad, score, length, height, angle))
        out.sort(key=lambda b: b.score, reverse=True)
        return out


def _mean_score(prob: FloatArray, contour: Any) -> float:
    x, y, w, h = cv2.boundingRect(contour)
    local = np.zeros((h, w), np.uint8)
    cv2.fillPoly(local, [contour.reshape(-1, 2) - (x, y)], 1)
    region = prob[y : y + h, x : x + w]
    return float(cv2.mean(region, mask=local)[0])
