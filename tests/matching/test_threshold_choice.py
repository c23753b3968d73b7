"""Choosing the threshold for a target FPIR from non-mated faces: the rate it leaves, the
Wilson interval, the support rule and the score kinds' lowest thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.matching.gallery import Gallery
from agent.matching.threshold_choice import (
    TargetNotSupported,
    alert_scores,
    choose_threshold,
    wilson_interval,
)


def test_wilson_interval_matches_the_closed_form_and_stays_in_0_1() -> None:
    lo, hi = wilson_interval(5, 100)
    # Published values for 5/100 at 95 %: 0.0215–0.1118.
    assert lo == pytest.approx(0.0215, abs=5e-4) and hi == pytest.approx(0.1118, abs=5e-4)
    assert wilson_interval(0, 50)[0] == 0.0 and 0 < wilson_interval(0, 50)[1] < 0.1
    assert wilson_interval(50, 50)[1] == 1.0


def test_at_most_the_allowed_faces_alert_and_the_threshold_is_the_lowest_that_does() -> None:
    scores = np.random.default_rng(0).normal(0.2, 0.1, 1000)
    choice = choose_threshold(scores, 0.01, "cosine", floor=-1.0)
    cal = choice.calibration
    assert cal.cohort_size == 1000 and cal.false_alerts <= 10
    assert cal.false_alerts == int((scores >= choice.threshold).sum())
    assert cal.fpir == cal.false_alerts / 1000 <= 0.01
    assert cal.fpir_ci95[0] <= cal.fpir <= cal.fpir_ci95[1]
    # One grid step lower lets more than 10 alert: it is the lowest on the 1e-4 grid.
    assert int((scores >= choice.threshold - 1e-4).sum()) > 10
    assert round(choice.threshold, 4) == choice.threshold


def test_a_score_exactly_on_the_grid_does_not_slip_through() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.5] + [0.1] * 96)
    choice = choose_threshold(scores, 0.03, "cosine", floor=-1.0)
    assert choice.calibration.false_alerts == 3 and choice.threshold > 0.5


def test_the_cosine_floor_and_the_snorm_zero_bound_the_threshold_from_below() -> None:
    scores = np.full(300, -np.inf)  # no face reaches the floor at all
    scores[:2] = [0.55, 0.45]
    cosine = choose_threshold(scores, 0.01, "cosine", floor=0.4)
    assert cosine.threshold == 0.4 and cosine.calibration.false_alerts == 2
    snorm = choose_threshold(scores, 0.01, "snorm", floor=0.4)
    assert snorm.threshold == 0.0


@pytest.mark.parametrize(
    ("target", "size", "message"),
    [
        (1 / 6000, 300, "needs a cohort of at least 18000 non-mated faces"),
        (0.001, 2999, "at least 3000"),
        (0.0, 300, "must be a rate above 0 and at most 1"),
        (1.5, 300, "must be a rate above 0 and at most 1"),
        (math.nan, 300, "must be a rate above 0 and at most 1"),
    ],
)
def test_targets_the_cohort_cannot_support_are_refused(
    target: float, size: int, message: str
) -> None:
    with pytest.raises(TargetNotSupported, match=message) as info:
        choose_threshold(np.zeros(size), target, "snorm", floor=0.4)
    assert "\n" not in str(info.value)


def test_a_threshold_beyond_the_kinds_range_is_refused() -> None:
    with pytest.raises(TargetNotSupported, match="above 1"):
        choose_threshold(np.full(300, 1.0), 0.01, "cosine", floor=0.4)


def test_alert_scores_are_the_first_entry_above_the_floor() -> None:
    rng = np.random.default_rng(1)
    entries = rng.standard_normal((80, 16)).astype(np.float32)
    gallery = Gallery(entries, [f"e{i}" for i in range(80)])
    probes = np.concatenate([entries[:3], rng.standard_normal((5, 16)).astype(np.float32)])
    got = alert_scores(gallery, probes, "snorm", floor=0.9, top_k=3, batch=3)
    ranking = gallery.rank(probes, 3, "snorm")
    # Probes batched three at a time: the same scores up to float rounding of the products.
    np.testing.assert_allclose(got, ranking.first_above_floor(0.9)[0], rtol=1e-6)
    assert np.isfinite(got[:3]).all() and np.isneginf(got[3:]).all()
