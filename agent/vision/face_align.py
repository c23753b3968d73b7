"""Alignment of a face to the 112×112 ArcFace template by a similarity transform.

The five detected landmarks are mapped onto the template points by the
least-squares similarity (rotation, uniform scale, translation; Umeyama's
method), the same kind of transform OpenCV's FaceRecognizerSF.alignCrop uses.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.camera.frame_source import BgrImage

ALIGNED_SIZE = 112
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def similarity_transform(
    src: npt.NDArray[np.floating], dst: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """2×3 matrix of the similarity that best maps ``src`` points onto ``dst`` (Umeyama 1991)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var_s = (s**2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ sign) / var_s) if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_face(
    image: npt.NDArray[Any],
    landmarks: npt.NDArray[np.floating],
    template: npt.NDArray[np.floating] = ARCFACE_TEMPLATE,
    size: int = ALIGNED_SIZE,
) -> BgrImage:
    """The size×size BGR face whose landmarks sit on ``template`` (default: the 112×112
    ArcFace template, which the quality checks always use; an embedder's own manifest may
    give another for its input)."""
    m = similarity_transform(landmarks, template)
    aligned: BgrImage = np.asarray(
        cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR), dtype=np.uint8
    )
    return aligned
