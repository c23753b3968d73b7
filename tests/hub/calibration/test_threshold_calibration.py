"""The calibration API: a target FPIR to a threshold for one watchlist and score kind, with
the rate achieved on the cohort and its 95 % interval; unsupported targets refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hub.calibration.calibration_world import cohort, seal, watchlist
from support.operator_passphrase import PASSPHRASE

from agent.errors import UsageError
from agent.hub.calibration.threshold_calibration import (
    calibrate,
    calibration_table,
    parse_fpir,
    resolve_score,
    watchlist_gallery,
)
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.watchlists.watchlist_reader import read_hub_watchlist
from agent.matching.threshold_choice import TargetNotSupported


@pytest.mark.parametrize("score", ["snorm", "cosine"])
def test_the_threshold_leaves_at_most_the_target_rate_as_the_device_decides(score: str) -> None:
    wl = watchlist(300)
    choice = calibrate(wl, cohort(4000), score=score, target_fpir=0.005, floor=0.0)
    cal = choice.calibration
    assert cal.cohort_size == 4000 and cal.false_alerts <= 20 and cal.fpir <= 0.005
    assert cal.fpir_ci95[0] <= cal.fpir <= cal.fpir_ci95[1]
    # The device's decision on the same faces, through the gallery it builds, agrees.
    ranking = watchlist_gallery(wl).rank(cohort(4000), 3, score)
    alerts = int((ranking.first_above_floor(0.0)[0] >= choice.threshold).sum())
    assert alerts == cal.false_alerts


@pytest.mark.parametrize("score", ["snorm", "cosine"])
def test_the_interval_covers_the_true_rate_of_new_faces(score: str) -> None:
    """Calibrated on 30 different cohorts of 4,000 people, each 95 % interval is checked
    against the rate its threshold really has (100,000 people never used to calibrate)."""
    wl = watchlist(300)
    truth = watchlist_gallery(wl).rank(cohort(100_000, seed=1000), 3, score)
    fresh = truth.first_above_floor(0.0)[0]
    covered = 0
    for seed in range(2, 32):
        cal = calibrate(wl, cohort(4000, seed=seed), score=score, target_fpir=0.005, floor=0.0)
        true_rate = float((fresh >= cal.threshold).mean())
        lo, hi = cal.calibration.fpir_ci95
        covered += lo <= true_rate <= hi
        assert true_rate < 0.005 * 2.5  # never far above the target
    assert covered >= 26  # nominal 95 %: at least 26 of 30


def test_the_table_gives_each_supported_target_and_refuses_the_rest() -> None:
    rows = calibration_table(
        watchlist(120), cohort(1000), score="snorm", targets=(0.01, 0.003, 1 / 6000)
    )
    assert [r.choice is not None for r in rows] == [True, True, False]
    assert rows[2].problem is not None and "at least 18000" in rows[2].problem
    # A lower target never gets a lower threshold.
    assert rows[1].choice and rows[0].choice
    assert rows[1].choice.threshold >= rows[0].choice.threshold


@pytest.mark.parametrize(
    ("target", "message"),
    [(1 / 6000, "at least 18000 non-mated faces"), (0.0, "above 0"), (2.0, "at most 1")],
)
def test_unsupported_targets_are_one_line_errors(target: float, message: str) -> None:
    with pytest.raises(TargetNotSupported, match=message) as info:
        calibrate(watchlist(120), cohort(600), score="snorm", target_fpir=target)
    assert "\n" not in str(info.value)


def test_a_small_watchlist_is_calibrated_in_cosine_when_auto() -> None:
    small = watchlist(20)
    gallery = watchlist_gallery(small)
    assert resolve_score(gallery, "auto")[0] == "cosine"
    assert "too small for S-norm" in (resolve_score(gallery, "auto")[1] or "")
    assert resolve_score(watchlist_gallery(watchlist(120)), "auto") == ("snorm", None)
    with pytest.raises(UsageError, match="S-norm needs every watchlist entry"):
        calibrate(small, cohort(600), score="snorm", target_fpir=0.01)
    choice = calibrate(small, cohort(600), score="cosine", target_fpir=0.01)
    assert choice.threshold >= 0.4  # never below the device's floor


def test_a_cohort_of_another_shape_or_with_nan_is_refused() -> None:
    with pytest.raises(UsageError, match="N×64 embeddings"):
        calibrate(watchlist(120), np.zeros((600, 32)), score="cosine", target_fpir=0.01)
    bad = cohort(600)
    bad[3, 0] = np.nan
    with pytest.raises(UsageError, match="NaN"):
        calibrate(watchlist(120), bad, score="cosine", target_fpir=0.01)


def test_the_hub_opens_its_own_sealed_watchlist(tmp_path: Path) -> None:
    hub = HubKeyStore.init(tmp_path / "hub", "alice", passphrase=PASSPHRASE)
    hw = read_hub_watchlist(seal(hub, tmp_path / "w.lfrwl", 120), hub)
    emb, refs = watchlist(120)
    assert hw.refs == refs and hw.embeddings.dtype == np.float16
    np.testing.assert_array_equal(hw.embeddings, emb.astype(np.float16))
    by_file = calibrate(hw, cohort(600), score="snorm", target_fpir=0.01)
    by_arrays = calibrate((emb, refs), cohort(600), score="snorm", target_fpir=0.01)
    assert by_file == by_arrays  # the arrays are taken as the bundle carries them
    hw.wipe()
    assert not hw.embeddings.any() and not hw.refs
    other = HubKeyStore.init(tmp_path / "other", "bob", passphrase=PASSPHRASE)
    with pytest.raises(UsageError, match="another X25519 key"):
        read_hub_watchlist(tmp_path / "w.lfrwl", other)
    with pytest.raises(UsageError, match="built without a hub copy"):
        read_hub_watchlist(seal(hub, tmp_path / "old.lfrwl", 120, hub_copy=False), hub)


@pytest.mark.parametrize(
    ("text", "value"), [("1/6000", 1 / 6000), ("1e-3", 1e-3), ("0.01", 0.01), ("1", 1.0)]
)
def test_rates_are_read_as_fractions_or_numbers(text: str, value: float) -> None:
    assert parse_fpir(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["0", "1/0", "2", "nan", "-1e-3", "one in 6000", ""])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--target-fpir"):
        parse_fpir(text)
