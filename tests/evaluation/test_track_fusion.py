"""Shot fusion compared on photo tracks: the fusion is the live pipeline's, the figures sound."""

from __future__ import annotations

import numpy as np
import pytest

from agent.errors import UsageError
from agent.evaluation.track_fusion import ONE_SHOT, _fuse, _Track, compare_fusion, d_prime
from agent.matching.gallery import Gallery


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _photo_set(
    people: int, photos: int, noise: float, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((people, 64)))
    identities = [f"p{i:02d}" for i in range(people) for _ in range(photos)]
    emb = _unit(
        np.repeat(centres, photos, axis=0) + noise * rng.standard_normal((people * photos, 64))
    )
    return identities, emb


def test_d_prime_is_the_pooled_standard_deviation_separation() -> None:
    m, n = [0.8, 0.7, 0.9], [0.1, 0.3, 0.2]
    want = (0.8 - 0.2) / np.sqrt((np.var(m, ddof=1) + np.var(n, ddof=1)) / 2)
    assert d_prime(m, n) == pytest.approx(want)
    assert np.isnan(d_prime([0.5], n))


def test_each_method_fuses_a_track_as_the_live_pipeline_does() -> None:
    rng = np.random.default_rng(4)
    emb = _unit(rng.standard_normal((5, 16)))
    ranks = np.array([0.2, 0.9, 0.5, 0.7, 0.3])
    gallery = Gallery(emb[[0, 4]], ["a", "b"])
    track = _Track("a", [1, 2, 3], True)
    scores = emb[[1, 2, 3]] @ emb[[0, 4]].T  # shots x entries
    best = int(np.argmax(scores.max(axis=0)))
    ref, score = _fuse("best_of", track, emb, ranks, gallery, top_k=2)
    assert (ref, score) == (["a", "b"][best], pytest.approx(float(scores.max())))
    # The matcher is asked after every shot: the track keeps its best fused top-1 so far.
    prefixes = [[1], [1, 2], [1, 2, 3]]
    fused = np.array(
        [_unit((emb[p] * ranks[p, None]).sum(axis=0)) @ emb[[0, 4]].T for p in prefixes]
    )
    shot, entry = np.unravel_index(int(np.argmax(fused)), fused.shape)
    ref, score = _fuse("weighted_mean", track, emb, ranks, gallery, top_k=2)
    assert (ref, score) == (["a", "b"][int(entry)], pytest.approx(float(fused[shot, entry])))
    ref, score = _fuse(ONE_SHOT, track, emb, ranks, gallery, top_k=2)
    assert score == pytest.approx(float(scores[0].max()))


def test_a_track_is_scored_by_its_best_shot_so_far_not_its_last() -> None:
    rng = np.random.default_rng(7)
    enrolled = _unit(rng.standard_normal((2, 32)))
    # The first shot is the enrolled photo itself; the later two are unrelated faces
    # that drag a running mean away from it.
    later = _unit(rng.standard_normal((2, 32)))
    emb = np.vstack([enrolled, enrolled[:1], later])
    ranks = np.ones(len(emb))
    gallery = Gallery(enrolled, ["a", "b"])
    track = _Track("a", [2, 3, 4], True)
    last = _unit(emb[[2, 3, 4]].sum(axis=0)) @ enrolled.T
    assert last.max() < 0.9  # the last shot alone would no longer decide the alert
    ref, score = _fuse("weighted_mean", track, emb, ranks, gallery, top_k=2)
    assert (ref, score) == ("a", pytest.approx(1.0, abs=1e-5))


def test_fusing_noisy_shots_separates_better_than_one_shot() -> None:
    identities, emb = _photo_set(people=12, photos=5, noise=0.12)
    ranks = np.ones(len(identities))
    fig = compare_fusion(identities, emb, ranks, shots=3, splits=10, seed=1)
    assert set(fig["methods"]) == {ONE_SHOT, "best_of", "weighted_mean"}
    assert fig["mated_tracks_per_split"] == 6 and fig["nonmated_tracks_per_split"] == 6
    d = {k: v["d_prime"] for k, v in fig["methods"].items()}
    # Averaging independent noise over 3 shots must pull each track towards its identity.
    assert d["weighted_mean"] > d[ONE_SHOT]
    for m in fig["methods"].values():
        assert set(m["tpir_at_fpir"]) == {"0.01", "0.05", "0.1"}
        assert 0.0 <= m["rank1"] <= 1.0


def test_too_few_photos_for_the_tracks_is_a_usage_error() -> None:
    identities, emb = _photo_set(people=6, photos=2, noise=0.1)
    with pytest.raises(UsageError, match="too few photos per identity for 3-shot tracks"):
        compare_fusion(identities, emb, np.ones(len(identities)), shots=3, splits=2)
    with pytest.raises(UsageError, match="at least 2 shots"):
        compare_fusion(identities, emb, np.ones(len(identities)), shots=1)
