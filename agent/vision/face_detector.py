"""Face detection with YuNet in onnxruntime, decoded as OpenCV's FaceDetectorYN does.

The frame is downscaled so its long side is at most ``input_long_side``, padded
at the right and bottom to a multiple of 32 and fed as raw BGR 0–255 NCHW. The
model emits, for each stride 8/16/32, one prior per grid cell with class and
objectness scores (score = sqrt(cls·obj)), a box delta and five landmark deltas.
Boxes and landmarks are mapped back to full-frame pixels before NMS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.vision.model_store import PinnedModel
from agent.vision.onnx_session import open_session

STRIDES = (8, 16, 32)
FloatArray = npt.NDArray[np.float32]
# Any H×W×3 uint8 BGR array (OpenCV's typing does not say uint8).
ImageArray = npt.NDArray[Any]


@dataclass(frozen=True, slots=True, eq=False)
class Detection:
    """One face: box (x, y, w, h) and 5 landmarks (right eye, left eye, nose, mouth corners),
    all in the pixels of the image given to ``detect``, and the detector score."""

    box: FloatArray  # shape (4,)
    score: float
    landmarks: FloatArray  # shape (5, 2)

    @property
    def x(self) -> float:
        return float(self.box[0])

    @property
    def y(self) -> float:
        return float(self.box[1])

    @property
    def w(self) -> float:
        return float(self.box[2])

    @property
    def h(self) -> float:
        return float(self.box[3])

    @property
    def centre(self) -> tuple[float, float]:
        return float(self.box[0] + self.box[2] / 2), float(self.box[1] + self.box[3] / 2)

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> Detection:
        """The same face in another coordinate frame: ``(p * scale) + (dx, dy)``."""
        box = self.box * np.float32(scale)
        box[0] += dx
        box[1] += dy
        lm = self.landmarks * np.float32(scale) + np.array([dx, dy], dtype=np.float32)
        return Detection(box.astype(np.float32), self.score, lm.astype(np.float32))


def iou(a: FloatArray, b: FloatArray) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, float(x1 - x0)) * max(0.0, float(y1 - y0))
    union = float(a[2] * a[3] + b[2] * b[3]) - inter
    return inter / union if union > 0 else 0.0


class FaceDetector:
    """YuNet on a downscaled copy of each image (optionally only a region of interest)."""

    def __init__(
        self,
        model: PinnedModel,
        *,
        input_long_side: int = 640,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        roi: Sequence[float] = (),
        top_k: int = 5000,
        threads: int = 1,
    ) -> None:
        if roi and len(roi) != 4:
            raise ValueError("roi must be empty or [x0, y0, x1, y1]")
        if roi and not (0 <= roi[0] < roi[2] <= 1 and 0 <= roi[1] < roi[3] <= 1):
            raise ValueError(f"roi must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {roi}")
        self.model = model
        self.input_long_side = int(input_long_side)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.roi = tuple(float(v) for v in roi)
        self.top_k = int(top_k)
        self._session = open_session(model, threads)
        self._input = self._session.get_inputs()[0].name
        self._outputs = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES]

    def detect(self, image: ImageArray) -> list[Detection]:
        """Faces in ``image`` (BGR uint8), in its pixel coordinates, best score first."""
        h, w = image.shape[:2]
        x0 = y0 = 0
        if self.roi:
            x0, y0 = int(self.roi[0] * w), int(self.roi[1] * h)
            x1, y1 = round(self.roi[2] * w), round(self.roi[3] * h)
            image = image[y0:y1, x0:x1]
        scale = min(1.0, self.input_long_side / max(image.shape[:2]))
        return [d.shifted(x0, y0) for d in self.detect_scaled(image, scale)]

    def detect_scaled(self, image: ImageArray, scale: float) -> list[Detection]:
        """Detect on ``image`` resized by ``scale``; results in ``image`` pixels."""
        h, w = image.shape[:2]
        if scale != 1.0:
            sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            small = cv2.resize(image, (sw, sh), interpolation=interp)
        else:
            small = image
        dets = self.detect_native(small)
        if scale == 1.0:
            return dets
        fx, fy = w / small.shape[1], h / small.shape[0]
        out = []
        for d in dets:
            box = d.box * np.array([fx, fy, fx, fy], dtype=np.float32)
            lm = d.landmarks * np.array([fx, fy], dtype=np.float32)
            out.append(Detection(box.astype(np.float32), d.score, lm.astype(np.float32)))
        return out

    def detect_native(self, image: ImageArray) -> list[Detection]:
        """Run the model on ``image`` at its own size (padded to /32)."""
        h, w = image.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, ph, pw), dtype=np.float32)
        blob[0, :, :h, :w] = image.transpose(2, 0, 1)
        outs = self._session.run(self._outputs, {self._input: blob})
        boxes, scores, lms = decode(outs, ph, pw, self.score_threshold)
        if not len(scores):
            return []
        keep = cv2.dnn.NMSBoxes(
            boxes.tolist(),
            scores.tolist(),
            self.score_threshold,
            self.nms_threshold,
            top_k=self.top_k,
        )
        order = sorted((int(i) for i in np.array(keep).reshape(-1)), key=lambda i: -scores[i])
        return [Detection(boxes[i], float(scores[i]), lms[i]) for i in order]


def decode(
    outs: Sequence[Any], height: int, width: int, score_threshold: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Decode the 12 YuNet outputs (cls×3, obj×3, bbox×3, kps×3) into boxes, scores, landmarks."""
    all_boxes, all_scores, all_lms = [], [], []
    for i, stride in enumerate(STRIDES):
        cols, rows = width // stride, height // stride
        cls = np.clip(outs[i].reshape(-1), 0, 1)
        obj = np.clip(outs[3 + i].reshape(-1), 0, 1)
        score = np.sqrt(cls * obj)
        sel = np.nonzero(score >= score_threshold)[0]
        if not sel.size:
            continue
        bbox = outs[6 + i].reshape(-1, 4)[sel]
        kps = outs[9 + i].reshape(-1, 10)[sel]
        col = (sel % cols).astype(np.float32)
        row = (sel // cols).astype(np.float32)
        assert rows * cols == score.size, "YuNet output does not match the input size"
        cx = (col + bbox[:, 0]) * stride
        cy = (row + bbox[:, 1]) * stride
        bw = np.exp(bbox[:, 2]) * stride
        bh = np.exp(bbox[:, 3]) * stride
        all_boxes.append(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1))
        lx = (kps[:, 0::2] + col[:, None]) * stride
        ly = (kps[:, 1::2] + row[:, None]) * stride
        all_lms.append(np.stack([lx, ly], axis=2))
        all_scores.append(score[sel])
    if not all_scores:
        empty = np.zeros((0,), dtype=np.float32)
        return empty.reshape(0, 4), empty, empty.reshape(0, 5, 2)
    return (
        np.concatenate(all_boxes).astype(np.float32),
        np.concatenate(all_scores).astype(np.float32),
        np.concatenate(all_lms).astype(np.float32),
    )
