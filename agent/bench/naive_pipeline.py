"""The naive baseline: OpenCV's own YuNet and SFace runners on every face of every frame.

``cv2.FaceDetectorYN`` and ``cv2.FaceRecognizerSF`` load the same converted,
pinned model files as the agent (checked by ``resolve_models``). There is no
tracking, no quality gate and no shot selection: each frame is detected (on
the same downscaled size as the agent, so only the per-frame strategy
differs) and every face found is aligned, embedded and searched.

``OpenCvFaceReference`` is also the "plain reference" of the open-set
evaluation: one shot per photo, no quality gating, an independent
implementation of decoding and alignment.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.camera.frame_source import BgrImage
from agent.errors import UsageError
from agent.matching.gallery import Gallery
from agent.vision.model_store import PinnedModel


class OpenCvFaceReference:
    """YuNet + SFace through OpenCV's FaceDetectorYN / FaceRecognizerSF."""

    def __init__(
        self,
        models: dict[str, PinnedModel],
        *,
        input_long_side: int = 640,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
    ) -> None:
        self.input_long_side = input_long_side
        self._detector: Any = cv2.FaceDetectorYN.create(
            str(models["detector"].path), "", (320, 320), score_threshold, nms_threshold, 5000
        )
        self._recogniser: Any = cv2.FaceRecognizerSF.create(str(models["embedder"].path), "")
        self._size = (320, 320)

    def detect(self, image: BgrImage) -> npt.NDArray[np.float32]:
        """N×15 rows (x, y, w, h, 5 landmarks, score) in ``image`` pixels."""
        h, w = image.shape[:2]
        scale = min(1.0, self.input_long_side / max(h, w))
        small: Any = image
        if scale < 1.0:
            small = cv2.resize(
                image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
            )
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self._detector.setInputSize(size)
            self._size = size
        _, faces = self._detector.detect(small)
        if faces is None:
            return np.zeros((0, 15), np.float32)
        rows: npt.NDArray[np.float32] = np.asarray(faces, dtype=np.float32)
        rows[:, :14] /= scale
        return rows

    def embed(self, image: BgrImage, face: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        aligned = self._recogniser.alignCrop(image, face)
        feat = np.asarray(self._recogniser.feature(aligned), np.float32).reshape(-1)
        norm = float(np.linalg.norm(feat))
        return feat / norm if norm > 0 else feat

    def embed_central(self, image: BgrImage) -> npt.NDArray[np.float32] | None:
        faces = self.detect(image)
        if not len(faces):
            return None
        cy, cx = image.shape[0] / 2, image.shape[1] / 2
        d = (faces[:, 0] + faces[:, 2] / 2 - cx) ** 2 + (faces[:, 1] + faces[:, 3] / 2 - cy) ** 2
        return self.embed(image, faces[int(np.argmin(d))])


class NaivePipeline:
    """Per frame: detect, then embed and search every face. Returns matches above threshold."""

    def __init__(
        self,
        models: dict[str, PinnedModel],
        gallery: Gallery,
        threshold: float,
        *,
        input_long_side: int = 640,
        top_k: int = 3,
    ) -> None:
        self.reference = OpenCvFaceReference(models, input_long_side=input_long_side)
        self.gallery = gallery
        self.threshold = threshold
        self.top_k = top_k
        self.faces_embedded = 0

    def process(self, image: BgrImage) -> list[tuple[str, float]]:
        out = []
        for face in self.reference.detect(image):
            emb = self.reference.embed(image, face)
            self.faces_embedded += 1
            scores, idx = self.gallery.search(emb[None, :], self.top_k)
            if scores.shape[1] and scores[0, 0] >= self.threshold:
                out.append((self.gallery.refs[int(idx[0, 0])], float(scores[0, 0])))
        return out


def run_naive(
    pipeline: NaivePipeline, images: Sequence[BgrImage], threads: int
) -> dict[str, float | int]:
    """Frames per second of the naive pipeline over decoded ``images``, OpenCV on ``threads``.

    Frames are decoded beforehand, as for the product pipeline, so only the pipeline is timed.
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        pipeline.process(images[0])  # builds OpenCV's network; not timed
        pipeline.faces_embedded = 0
        t0 = time.perf_counter()
        for image in images:
            pipeline.process(image)
        elapsed = time.perf_counter() - t0
    finally:
        cv2.setNumThreads(previous)
    return {
        "frames": len(images),
        "seconds": round(elapsed, 3),
        "fps": round(len(images) / elapsed, 2),
        "faces_embedded": pipeline.faces_embedded,
    }


def read_frame(path: Path) -> BgrImage:
    image: BgrImage | None = cv2.imread(str(path), cv2.IMREAD_COLOR)  # type: ignore[assignment]
    if image is None:
        raise UsageError(f"bench: {path}: not a readable image")
    return image
