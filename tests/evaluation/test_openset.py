"""Open-set metrics on hand-made scores and embeddings."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from agent.errors import UsageError
from agent.evaluation.openset import (
    THRESHOLD_GRID,
    SplitScores,
    evaluate_openset,
    list_labelled_photos,
    score_split,
    tpir_at_fpir,
)


def _split() -> SplitScores:
    return SplitScores(
        watchlist_size=3,
        mated_scores=np.array([0.9, 0.5, -np.inf], np.float32),
        mated_correct=np.array([True, False, True]),
        nonmated_scores=np.array([0.6, 0.2], np.float32),
    )


def test_rates_at_a_threshold_follow_the_definitions() -> None:
    s = _split()
    t = np.array([0.4, 0.95])
    # TPIR needs the right identity AND a score above threshold; a probe without a face misses.
    assert s.tpir(t).tolist() == pytest.approx([1 / 3, 0.0])
    assert s.fpir(t).tolist() == pytest.approx([0.5, 0.0])
    assert s.rank1 == pytest.approx(2 / 3)


def test_tpir_at_fpir_picks_the_lowest_threshold_meeting_the_fpir() -> None:
    tpir, threshold = tpir_at_fpir(_split(), 0.0)
    assert threshold > 0.6 and threshold <= 0.6 + 0.0026
    assert tpir == pytest.approx(1 / 3)
    tpir, threshold = tpir_at_fpir(_split(), 0.5)
    assert 0.2 < threshold <= 0.2026 and tpir == pytest.approx(1 / 3)


def _clusters(
    n_ids: int, per_id: int, spread: float, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, 128))
    labels, rows = [], []
    for i in range(n_ids):
        for _ in range(per_id):
            labels.append(f"id{i:02d}")
            rows.append(centres[i] + spread * rng.standard_normal(128))
    emb = np.array(rows, np.float32)
    return labels, emb / np.linalg.norm(emb, axis=1, keepdims=True)


def test_separable_identities_score_perfectly_and_noise_does_not() -> None:
    labels, emb = _clusters(10, 4, spread=0.2)
    good = evaluate_openset(labels, emb, seed=1, splits=10, report_thresholds=(0.5,))
    assert good.summary["rank1"] == 1.0
    assert good.summary["tpir_at_fpir"]["0.01"]["tpir"] == 1.0
    assert good.summary["at_threshold"]["0.5"] == {"tpir": 1.0, "fpir": 0.0}
    labels, emb = _clusters(10, 4, spread=5.0)
    bad = evaluate_openset(labels, emb, seed=1, splits=10)
    assert bad.summary["rank1"] < 0.6
    assert bad.summary["tpir_at_fpir"]["0.01"]["tpir"] < 0.5
    # Averaged curves: both rates can only fall as the threshold rises.
    assert np.all(np.diff(bad.tpir) <= 1e-12) and np.all(np.diff(bad.fpir) <= 1e-12)
    assert len(bad.tpir) == len(THRESHOLD_GRID)


def test_splits_are_seeded_and_use_one_enrolment_photo_per_watchlist_identity() -> None:
    labels, emb = _clusters(8, 3, spread=1.0)
    a = evaluate_openset(labels, emb, seed=7, splits=5).summary
    b = evaluate_openset(labels, emb, seed=7, splits=5).summary
    assert a == b
    s = score_split(labels, emb, random.Random(0), 0.5)
    assert s.watchlist_size == 4
    assert len(s.mated_scores) == 4 * 2  # the rest of each watchlist identity's photos
    assert len(s.nonmated_scores) == 4 * 3


def test_photos_without_a_face_are_misses_and_never_enrolled() -> None:
    labels, emb = _clusters(6, 3, spread=0.1)
    emb[labels.index("id00")] = np.nan  # one photo of id00 has no face
    for seed in range(10):
        s = score_split(labels, emb, random.Random(seed), 0.5)
        assert np.isfinite(s.nonmated_scores).sum() >= len(s.nonmated_scores) - 1
    # All photos of one identity faceless: it cannot be enrolled, the split still works.
    for i, lab in enumerate(labels):
        if lab == "id01":
            emb[i] = np.nan
    r = evaluate_openset(labels, emb, seed=0, splits=20)
    assert r.summary["no_face_photos"] == 4
    rng = random.Random(5)
    sizes = set()
    for _ in range(20):
        s = score_split(labels, emb, rng, 0.5)
        sizes.add(s.watchlist_size)
        # Every probe with a face is identified (clusters are tight); faceless ones are misses.
        missed = int((~s.mated_correct).sum())
        assert missed == int((~np.isfinite(s.mated_scores)).sum())
    assert sizes == {2, 3}  # 3 identities drawn; 2 enrolled whenever id01 is among them


def test_bad_photo_sets_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a folder"):
        list_labelled_photos(tmp_path / "missing")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.jpg").write_bytes(b"x")
    with pytest.raises(UsageError, match="at least 3 identity folders"):
        list_labelled_photos(tmp_path)
    labels, emb = _clusters(4, 2, 0.1)
    with pytest.raises(UsageError, match="watchlist fraction"):
        evaluate_openset(labels, emb, watchlist_fraction=1.0)
    with pytest.raises(UsageError, match="labels but"):
        evaluate_openset(labels[:-1], emb)
