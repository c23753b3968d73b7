"""Shot fusion along a track: best-of keeps each entry's best score; weighted mean averages."""

from __future__ import annotations

import numpy as np
import pytest

from agent.vision.shot_fusion import ShotAccumulator


def unit(v: list[float]) -> np.ndarray:
    a = np.array(v, np.float32)
    return a / np.linalg.norm(a)


def test_best_of_keeps_the_best_score_per_entry() -> None:
    acc = ShotAccumulator("best_of")
    p = acc.add(unit([1, 0]), 0.5)
    np.testing.assert_allclose(p, unit([1, 0]))
    # Scores of another kind (S-norm) travel with the cosine of the same shot.
    first = acc.fuse_scores(
        np.array([7.0, 2.0], np.float32), np.array([3, 1]), np.array([0.7, 0.2], np.float32)
    )
    assert first == [(3, 7.0, pytest.approx(0.7)), (1, 2.0, pytest.approx(0.2))]
    ranked = acc.fuse_scores(
        np.array([5.0, 4.0], np.float32), np.array([3, 1]), np.array([0.9, 0.4], np.float32)
    )
    # Entry 3 keeps its best score (7.0) and that shot's cosine, not the later 0.9.
    assert ranked == [(3, 7.0, pytest.approx(0.7)), (1, 4.0, pytest.approx(0.4))]
    acc.clear()
    assert acc.best_scores == {} and acc.shots == 0


def test_weighted_mean_leans_to_the_better_shot() -> None:
    acc = ShotAccumulator("weighted_mean")
    acc.add(unit([1, 0]), 0.9)
    fused = acc.add(unit([0, 1]), 0.1)
    assert fused[0] > fused[1] > 0 and abs(np.linalg.norm(fused) - 1) < 1e-6
    acc.clear()
    again = acc.add(unit([0, 1]), 0.1)
    np.testing.assert_allclose(again, unit([0, 1]))


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="fusion"):
        ShotAccumulator("median")
