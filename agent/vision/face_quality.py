"""Per-face quality: is this shot worth embedding, and how good is it compared with others.

Figures come from the landmarks and the aligned crop only: inter-eye distance
(in frame pixels), sharpness (variance of the Laplacian of the aligned face),
yaw estimated from where the nose sits between the eyes (0 frontal, 1 profile)
and the detector score. ``rank`` orders shots of one track (higher is better).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from agent.camera.frame_source import BgrImage
from agent.config import QualitySection

# Above these the figure no longer improves the rank: a face 60 px between the eyes
# and a Laplacian variance of 300 are as good as embedding gets at 112×112.
_GOOD_INTER_EYE_PX = 60.0
_GOOD_SHARPNESS = 300.0


@dataclass(frozen=True, slots=True)
class FaceQuality:
    inter_eye_px: float
    sharpness: float
    yaw: float
    score: float
    passes: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def rank(self) -> float:
        """Shot goodness in [0, 1], for choosing and weighting shots along a track."""
        size = min(1.0, self.inter_eye_px / _GOOD_INTER_EYE_PX)
        sharp = min(1.0, self.sharpness / _GOOD_SHARPNESS)
        return float(self.score * size * (0.5 + 0.5 * sharp) * (1.0 - self.yaw))

    def figures(self) -> dict[str, float]:
        return {
            "inter_eye_px": round(self.inter_eye_px, 1),
            "sharpness": round(self.sharpness, 1),
            "yaw": round(self.yaw, 3),
            "detector_score": round(self.score, 3),
        }


def inter_eye_distance(landmarks: npt.NDArray[np.floating]) -> float:
    return float(np.linalg.norm(landmarks[0] - landmarks[1]))


def yaw_from_landmarks(landmarks: npt.NDArray[np.floating]) -> float:
    """0 when the nose is midway between the eyes, towards 1 as it reaches either eye."""
    right_eye, left_eye, nose = (np.asarray(landmarks[i], dtype=np.float64) for i in range(3))
    axis = left_eye - right_eye
    length = float(np.linalg.norm(axis))
    if length < 1e-6:
        return 1.0
    # Position of the nose projected on the eye axis: 0 at one eye, 1 at the other.
    t = float(np.dot(nose - right_eye, axis) / (length * length))
    return float(min(1.0, abs(t - 0.5) * 2.0))


def sharpness(aligned: BgrImage) -> float:
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def assess_face(
    landmarks: npt.NDArray[np.floating], score: float, aligned: BgrImage, cfg: QualitySection
) -> FaceQuality:
    """Quality figures and the pass/fail verdict against ``cfg``, with reasons for a fail."""
    eye = inter_eye_distance(landmarks)
    sharp = sharpness(aligned)
    yaw = yaw_from_landmarks(landmarks)
    reasons = []
    if eye < cfg.min_inter_eye_px:
        reasons.append(f"face too small: inter-eye {eye:.0f} px < {cfg.min_inter_eye_px:g}")
    if sharp < cfg.min_sharpness:
        reasons.append(f"face too blurred: sharpness {sharp:.0f} < {cfg.min_sharpness:g}")
    if yaw > cfg.max_yaw:
        reasons.append(f"face turned away: yaw {yaw:.2f} > {cfg.max_yaw:g}")
    if score < cfg.min_detector_score:
        reasons.append(f"face uncertain: detector score {score:.2f} < {cfg.min_detector_score:g}")
    return FaceQuality(eye, sharp, yaw, float(score), not reasons, reasons)
