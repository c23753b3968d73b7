"""S-norm against the watchlist: exact against a brute-force N×N computation, the probe's
best subject left out of its T-norm, the top k taken over every entry, small watchlists
refused, statistics wiped with the gallery."""

from __future__ import annotations

import numpy as np
import pytest

from agent.matching.gallery import Gallery
from agent.matching.score_normalisation import (
    SNORM_MIN_COHORT,
    CohortTooSmall,
    cohort_statistics,
    subject_groups,
)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _watchlist(n: int = 120, dim: int = 24, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Entries with a few subjects of 2–3 photos each (near each other) among single ones."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n, dim))
    refs = [f"s{i}" for i in range(n)]
    for start, size in ((0, 3), (10, 2), (20, 3)):
        for k in range(1, size):
            rows[start + k] = rows[start] + 0.3 * rng.standard_normal(dim)
            refs[start + k] = refs[start]
    return _unit(rows), refs


def _brute_force_snorm(
    entries: np.ndarray, refs: list[str], probe: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every formula of the issue, done the slow way: N×N scores, masks, numpy mean/std."""
    refs_a = np.array(refs)
    gram = entries.astype(np.float64) @ entries.T.astype(np.float64)
    z_mean = np.array([gram[i, refs_a != refs_a[i]].mean() for i in range(len(refs))])
    z_std = np.array([gram[i, refs_a != refs_a[i]].std() for i in range(len(refs))])
    cos = entries.astype(np.float64) @ probe.astype(np.float64)
    others = refs_a != refs_a[int(np.argmax(cos))]
    t_mean, t_std = cos[others].mean(), cos[others].std()
    return 0.5 * ((cos - z_mean) / z_std + (cos - t_mean) / t_std), cos


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_snorm_equals_the_brute_force_definition(dtype: type[np.floating]) -> None:
    entries, refs = _watchlist()
    gallery = Gallery(entries.astype(dtype), refs)
    stored = gallery._emb.astype(np.float32)  # what the gallery holds (float16 rounded)
    probes = _unit(np.random.default_rng(5).standard_normal((6, entries.shape[1])))
    probes[0] = _unit(entries[11:12] + 0.05)[0]  # a mated probe of a two-photo subject
    ranking = gallery.rank(probes, 8, "snorm")
    for i, p in enumerate(probes):
        want, cos = _brute_force_snorm(stored, refs, p)
        order = np.argsort(-want)[:8]
        assert ranking.indices[i].tolist() == order.tolist()
        np.testing.assert_allclose(ranking.scores[i], want[order], atol=2e-4)
        np.testing.assert_allclose(ranking.cosines[i], cos[order], atol=1e-5)


def test_the_best_subject_is_left_out_of_the_t_norm() -> None:
    entries, refs = _watchlist()
    gallery = Gallery(entries, refs)
    probe = entries[0]  # identical to an entry of a three-photo subject
    ranking = gallery.rank(probe[None, :], 1, "snorm")
    want, _ = _brute_force_snorm(entries, refs, probe)
    assert ranking.indices[0, 0] == 0
    assert ranking.scores[0, 0] == pytest.approx(want[0], abs=2e-4)
    # Leaving the subject in would have counted three near-1 scores in the probe's own
    # statistics and lowered its score a lot.
    cos = entries @ probe
    naive_t = (cos[0] - cos.mean()) / cos.std()
    assert ranking.scores[0, 0] > 0.5 * naive_t + 1.0


def test_the_top_k_is_taken_over_every_entry_not_the_cosine_top_k() -> None:
    rng = np.random.default_rng(3)
    dim = 16
    centre = _unit(rng.standard_normal((1, dim)))[0]
    # "hub" entries: many near one direction, so everything scores high against them
    # (high Z-norm mean); "quiet" entries: random.
    hub = _unit(centre + 0.35 * rng.standard_normal((60, dim)))
    quiet = _unit(rng.standard_normal((60, dim)))
    entries = np.concatenate([hub, quiet])
    refs = [f"e{i}" for i in range(len(entries))]
    gallery = Gallery(entries, refs)
    probes = _unit(rng.standard_normal((40, dim)))
    by_cos = gallery.rank(probes, 1, "cosine").indices[:, 0]
    by_snorm = gallery.rank(probes, 1, "snorm").indices[:, 0]
    assert (by_cos != by_snorm).any()  # S-norm reorders: the exact top k differs
    assert (by_snorm >= 60).sum() > (by_cos >= 60).sum()  # away from the crowded entries


def test_a_watchlist_too_small_to_normalise_against_is_refused() -> None:
    entries, _ = _watchlist(n=SNORM_MIN_COHORT, dim=8)
    refs = [f"s{i}" for i in range(SNORM_MIN_COHORT)]
    small = Gallery(entries, refs)  # each entry has 49 others
    assert small.smallest_cohort == SNORM_MIN_COHORT - 1
    with pytest.raises(CohortTooSmall, match="at least 50 entries of other subjects"):
        small.prepare("snorm")
    with pytest.raises(CohortTooSmall):
        small.rank(entries[:1], 1, "snorm")
    small.rank(entries[:1], 1, "cosine")  # cosine needs no cohort
    # One subject with many photos counts for nothing: entries of the same subject are mated.
    entries, _ = _watchlist(n=SNORM_MIN_COHORT + 10, dim=8)
    refs = ["big"] * 11 + [f"s{i}" for i in range(SNORM_MIN_COHORT - 1)]
    assert Gallery(entries, refs).smallest_cohort == SNORM_MIN_COHORT - 1


def test_statistics_are_wiped_with_the_gallery() -> None:
    entries, refs = _watchlist()
    gallery = Gallery(entries, refs)
    gallery.prepare("snorm")
    stats = gallery._cohort
    assert stats is not None and stats.z_std.any() and stats.second_moment.any()
    gallery.clear()
    assert gallery._cohort is None
    assert not stats.z_mean.any() and not stats.z_std.any()
    assert not stats.total.any() and not stats.second_moment.any()


def test_identical_entries_do_not_divide_by_zero() -> None:
    entries, _ = _watchlist(n=80, dim=8)
    entries[:] = entries[0]  # every entry the same vector: no spread at all
    stats = cohort_statistics(entries, subject_groups([f"s{i}" for i in range(80)]))
    assert np.isfinite(stats.z_std).all() and (stats.z_std > 0).all()
    ranking = Gallery(entries, [f"s{i}" for i in range(80)]).rank(entries[:1], 3, "snorm")
    assert np.isfinite(ranking.scores).all()


def test_an_unknown_score_kind_is_a_programming_error() -> None:
    entries, refs = _watchlist()
    with pytest.raises(ValueError, match="score kind"):
        Gallery(entries, refs).rank(entries[:1], 1, "tnorm")


def test_first_above_floor_skips_entries_below_the_cosine_floor() -> None:
    entries, refs = _watchlist()
    gallery = Gallery(entries, refs)
    probes = np.stack([entries[40], _unit(np.ones((1, entries.shape[1])))[0]])
    ranking = gallery.rank(probes, 5, "snorm")
    scores, rows = ranking.first_above_floor(0.99)
    assert rows[0] == 40 and scores[0] == ranking.scores[0, 0]
    assert rows[1] == -1 and scores[1] == -np.inf  # nothing near enough
    scores, rows = ranking.first_above_floor(-1.0)
    assert (rows == ranking.indices[:, 0]).all()
