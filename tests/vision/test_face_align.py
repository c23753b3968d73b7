"""Similarity alignment onto the ArcFace template."""

from __future__ import annotations

import numpy as np

from agent.vision.face_align import ARCFACE_TEMPLATE, align_face, similarity_transform


def test_similarity_transform_recovers_a_known_transform() -> None:
    angle, scale, t = 0.3, 2.5, np.array([40.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE @ rot.T + t
    m = similarity_transform(src, ARCFACE_TEMPLATE)
    mapped = src @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(mapped, ARCFACE_TEMPLATE, atol=1e-9)


def test_aligned_face_puts_landmarks_on_the_template() -> None:
    # Draw five dots at rotated, scaled template positions; after alignment they sit on the template.
    image = np.zeros((400, 400, 3), np.uint8)
    angle, scale = -0.2, 2.0
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = ARCFACE_TEMPLATE @ rot.T + np.array([100.0, 80.0])
    for x, y in pts:
        image[round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3] = 255
    aligned = align_face(image, pts.astype(np.float32))
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    for x, y in ARCFACE_TEMPLATE:
        assert aligned[round(y), round(x)].max() > 100
    assert aligned[5, 5].max() == 0
