"""Open-set metrics on hand-made scores and embeddings."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from agent.errors import UsageError
from agent.evaluation.openset import (
    THRESHOLD_GRID,
    ExtraFaces,
    SplitScores,
    evaluate_openset,
    list_labelled_photos,
    read_groups,
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
    # Two non-mated probes (0.6, 0.2): at FPIR 0.5 one may alert, so the threshold sits just
    # above the second highest, on the calibration's 1e-4 grid.
    tpir, threshold = tpir_at_fpir(_split(), 0.5)
    assert threshold == pytest.approx(0.2001) and tpir == pytest.approx(1 / 3)
    tpir, threshold = tpir_at_fpir(_split(), 1.0)
    assert threshold == 0.0  # every probe may alert: the lowest cosine threshold there is
    assert tpir == pytest.approx(1 / 3)


def test_tpir_at_fpir_is_not_given_where_the_set_cannot_resolve_the_rate() -> None:
    # 2 non-mated probes cannot resolve 0.4 (needs 1/0.4 = 3), nor is 0 a rate.
    for target in (0.4, 0.0):
        tpir, threshold = tpir_at_fpir(_split(), target)
        assert np.isnan(tpir) and np.isnan(threshold)


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
    targets = (0.1, 0.05, 0.01)
    good = evaluate_openset(
        labels, emb, seed=1, splits=10, report_thresholds=(0.5,), fpir_targets=targets
    )
    assert good.summary["rank1"] == 1.0
    assert good.summary["tpir_at_fpir"]["0.05"]["tpir"] == 1.0
    # 5 non-mated identities × 4 photos = 20 probes: 1/100 cannot be resolved.
    assert "unsupported" in good.summary["tpir_at_fpir"]["0.01"]
    assert good.summary["at_threshold"]["0.5"] == {"tpir": 1.0, "fpir": 0.0}
    labels, emb = _clusters(10, 4, spread=5.0)
    bad = evaluate_openset(labels, emb, seed=1, splits=10, fpir_targets=targets)
    assert bad.summary["rank1"] < 0.6
    assert bad.summary["tpir_at_fpir"]["0.05"]["tpir"] < 0.5
    # Averaged curves: both rates can only fall as the threshold rises.
    assert np.all(np.diff(bad.tpir) <= 1e-12) and np.all(np.diff(bad.fpir) <= 1e-12)
    assert len(bad.tpir) == len(THRESHOLD_GRID)


def test_splits_are_seeded_and_use_one_enrolment_photo_per_watchlist_identity() -> None:
    labels, emb = _clusters(8, 3, spread=1.0)
    a = evaluate_openset(labels, emb, seed=7, splits=5).summary
    b = evaluate_openset(labels, emb, seed=7, splits=5).summary
    assert json.dumps(a) == json.dumps(b)  # NaN figures compare equal as text
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


def _crowd(n_photos: int, per_photo: int, seed: int = 9) -> ExtraFaces:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n_photos * per_photo, 128)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return ExtraFaces(emb, np.repeat(np.arange(n_photos), per_photo).astype(np.intp))


def test_snorm_needs_crowd_fillers_and_then_runs_on_the_same_splits_as_cosine() -> None:
    labels, emb = _clusters(10, 4, spread=0.6)
    alone = evaluate_openset(labels, emb, seed=2, splits=4, score="snorm")
    assert "S-norm needs every watchlist entry" in alone.summary["unavailable"]
    assert np.isnan(alone.tpir).all()
    crowd = _crowd(30, 4)
    kw: dict[str, object] = {"seed": 2, "splits": 4, "extra": crowd, "fillers": 64,
                             "fpir_targets": (0.1, 0.01)}  # fmt: skip
    snorm = evaluate_openset(labels, emb, score="snorm", **kw).summary  # type: ignore[arg-type]
    cosine = evaluate_openset(labels, emb, score="cosine", **kw).summary  # type: ignore[arg-type]
    # Whole photos go on the watchlist until 64 faces: 16 photos; the rest are probes.
    assert snorm["watchlist_entries_mean"] == pytest.approx(5 + 64)
    assert snorm["nonmated_probes_per_split"] == cosine["nonmated_probes_per_split"] == 20 + 56
    assert snorm["mated_probes_per_split"] == cosine["mated_probes_per_split"]
    assert snorm["crowd_faces"] == 120 and snorm["score"] == "snorm"
    assert snorm["tpir_at_fpir"]["0.1"]["threshold_mean"] > 1.0  # S-norm units, not cosine


def test_bootstrap_intervals_contain_the_estimate_and_are_seeded() -> None:
    labels, emb = _clusters(12, 4, spread=2.2)
    kw: dict[str, object] = {"seed": 4, "splits": 6, "bootstrap": 300, "fpir_targets": (0.1,)}
    a = evaluate_openset(labels, emb, **kw).summary  # type: ignore[arg-type]
    b = evaluate_openset(labels, emb, **kw).summary  # type: ignore[arg-type]
    assert json.dumps(a) == json.dumps(b)
    fig = a["tpir_at_fpir"]["0.1"]
    lo, hi = fig["tpir_ci95"]
    assert lo <= fig["tpir"] <= hi and hi - lo > 0.05  # a noisy set: a real interval
    assert a["rank1_ci95"][0] <= a["rank1"] <= a["rank1_ci95"][1]
    assert a["bootstrap"] == {"replicates": 300, "clusters": 12}
    t_lo, t_hi = fig["threshold_ci95"]
    assert t_lo <= fig["threshold_mean"] + 0.01 and fig["threshold_mean"] - 0.01 <= t_hi


def test_group_rates_with_intervals_and_small_groups_flagged() -> None:
    labels, emb = _clusters(14, 4, spread=1.0)
    names = sorted(set(labels))
    groups = {n: ("A" if i < 8 else "B" if i < 12 else "C") for i, n in enumerate(names)}
    s = evaluate_openset(
        labels, emb, seed=1, splits=8, bootstrap=200, groups=groups, fpir_targets=(0.1,)
    ).summary["groups"]
    assert s["target_fpir"] == 0.1
    a, b, c = (s["groups"][g] for g in "ABC")
    assert (a["identities"], b["identities"], c["identities"]) == (8, 4, 2)
    assert not a["too_small"] and b["too_small"] and c["too_small"]
    for g in (a, b, c):
        assert 0 <= g["tpir"] <= 1 and 0 <= g["fpir"] <= 1
        assert g["tpir_ci95"][0] <= g["tpir"] <= g["tpir_ci95"][1]
    # Only one group is large enough to count: no ratio between groups can be given.
    assert np.isnan(s["tpir_max_min_ratio"]) and np.isnan(s["fpir_max_min_ratio"])


def test_groups_csv_is_read_with_or_without_header(tmp_path: Path) -> None:
    (tmp_path / "g.csv").write_text("identity,group\nid00,A\n\nid01, B\n")
    assert read_groups(tmp_path / "g.csv") == {"id00": "A", "id01": "B"}
    for text, message in (
        ("id00\n", "row 1 is not 'identity,group'"),
        ("id00,A\nid00,B\n", "is in two groups"),
        ("identity,group\n", "no rows"),
    ):
        (tmp_path / "g.csv").write_text(text)
        with pytest.raises(UsageError, match=message):
            read_groups(tmp_path / "g.csv")
    with pytest.raises(UsageError, match="cannot read"):
        read_groups(tmp_path / "missing.csv")
