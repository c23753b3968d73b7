"""The DET chart is a real PNG with the curves drawn where the rates say."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from agent.evaluation.det_plot import COLOURS, render_det, save_det_png


def test_curves_are_drawn_in_their_colours(tmp_path: Path) -> None:
    fpir = np.logspace(-3, 0, 50)
    curves = {"a": (fpir, 0.05 / np.maximum(fpir, 0.05)), "b": (fpir, fpir[::-1])}
    path = tmp_path / "det.png"
    save_det_png(path, curves, "test")
    img = cv2.imread(str(path))
    assert img is not None and img.shape == render_det(curves, "test").shape
    for colour in COLOURS[:2]:
        assert (np.abs(img.astype(int) - colour).sum(axis=2) < 30).sum() > 100


def test_zero_rates_sit_on_the_floor_and_nan_is_skipped() -> None:
    empty = render_det({}, "t")
    img = render_det({"z": (np.array([0.0, 1.0, np.nan]), np.array([0.0, 0.0, np.nan]))}, "t")
    changed = np.argwhere((img != empty).any(axis=2))
    assert len(changed) > 0  # the line along the bottom axis and its legend entry
