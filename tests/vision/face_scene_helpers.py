"""Tiny synthetic street scenes for the pipeline tests: face photos moving across a background."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from agent.camera.frame_source import Frame
from agent.vision.still_photo import StillPhotoAnalyser


@dataclass
class Walker:
    """A face cut (with margin) from a photo, moving in a straight line."""

    patch: np.ndarray
    start: tuple[float, float]
    end: tuple[float, float]
    first: int  # first frame index it is visible
    last: int


def face_patch(analyser: StillPhotoAnalyser, photo: Path, face_px: int = 200) -> np.ndarray:
    """The photo's central face with a margin, scaled so the face box is about ``face_px`` wide."""
    image = cv2.imread(str(photo))
    assert image is not None, photo
    det = analyser.central_face(image)
    assert det is not None, f"no face in {photo}"
    m = 0.6
    h, w = image.shape[:2]
    x0, y0 = max(0, int(det.x - m * det.w)), max(0, int(det.y - m * det.h))
    x1, y1 = min(w, int(det.x + (1 + m) * det.w)), min(h, int(det.y + (1 + m) * det.h))
    crop = image[y0:y1, x0:x1]
    s = face_px / det.w
    return cv2.resize(crop, (max(1, int(crop.shape[1] * s)), max(1, int(crop.shape[0] * s))))


def background(shared_data: Path, size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    bg = cv2.imread(
        str(shared_data / "scenes/no_faces/scikit-learn__sklearn_datasets_images_china.jpg")
    )
    assert bg is not None
    return cv2.resize(bg, size)


def render(
    bg: np.ndarray, walkers: list[Walker], n_frames: int, t0: float | None = None
) -> list[Frame]:
    """Frames 1/30 s apart; timestamps start now on the monotonic clock unless ``t0`` is given."""
    t0 = time.monotonic() if t0 is None else t0
    frames = []
    for i in range(n_frames):
        img = bg.copy()
        for wk in walkers:
            if not wk.first <= i <= wk.last:
                continue
            a = (i - wk.first) / max(1, wk.last - wk.first)
            x = int(wk.start[0] + a * (wk.end[0] - wk.start[0]))
            y = int(wk.start[1] + a * (wk.end[1] - wk.start[1]))
            ph, pw = wk.patch.shape[:2]
            x, y = min(max(0, x), img.shape[1] - pw), min(max(0, y), img.shape[0] - ph)
            img[y : y + ph, x : x + pw] = wk.patch
        frames.append(Frame(i + 1, t0 + i / 30.0, img))
    return frames
