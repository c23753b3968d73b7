"""Quality figures from landmarks and the aligned crop, with reasons for a fail."""

from __future__ import annotations

import cv2
import numpy as np

from agent.config import QualitySection
from agent.vision.face_align import ARCFACE_TEMPLATE
from agent.vision.face_quality import assess_face, sharpness, yaw_from_landmarks


def _textured() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)


def test_frontal_template_has_low_yaw_and_profile_high() -> None:
    assert yaw_from_landmarks(ARCFACE_TEMPLATE) < 0.05
    turned = ARCFACE_TEMPLATE.copy()
    turned[2, 0] = turned[1, 0] - 2  # nose next to one eye
    assert yaw_from_landmarks(turned) > 0.8
    rotated = ARCFACE_TEMPLATE @ np.array([[0.0, -1.0], [1.0, 0.0]])  # in-plane roll is not yaw
    assert yaw_from_landmarks(rotated) < 0.05


def test_blur_lowers_sharpness() -> None:
    img = _textured()
    assert sharpness(cv2.GaussianBlur(img, (9, 9), 3)) < sharpness(img) / 10


def test_good_face_passes_and_bad_one_names_every_reason() -> None:
    cfg = QualitySection()
    big = ARCFACE_TEMPLATE * 2.0
    good = assess_face(big, 0.95, _textured(), cfg)
    assert good.passes and good.reasons == [] and 0 < good.rank <= 1
    small = ARCFACE_TEMPLATE * 0.3
    blurred = np.full((112, 112, 3), 128, np.uint8)
    bad = assess_face(small, 0.5, blurred, cfg)
    assert not bad.passes
    text = " | ".join(bad.reasons)
    assert "face too small: inter-eye 11 px < 18" in text
    assert "blurred" in text and "detector score 0.50 < 0.7" in text
    assert bad.rank < good.rank
    assert set(good.figures()) == {"inter_eye_px", "sharpness", "yaw", "detector_score"}
