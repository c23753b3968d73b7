"""S-norm: a probe's cosine score against a watchlist entry, standardised against the watchlist.

The score of probe p against entry g becomes the mean of

* the **Z-norm** score ``(s - mean_g) / std_g``, where mean_g and std_g are the
  statistics of g's cosine scores against every watchlist entry of *another*
  subject (entries sharing g's reference are photos of the same person and are
  left out). Watchlist subjects are different people by construction, so these
  statistics are label-free;
* the **T-norm** score ``(s - mean_p) / std_p``, where mean_p and std_p are the
  statistics of p's cosine scores against the watchlist with its best match's
  subject (every entry of the reference with the top cosine score) left out.

Both are exact, and cheap enough to run on the camera, because of two sums kept
at load: ``total`` (the sum of the entry vectors, D values) and ``second_moment``
(the D×D sum of their outer products). For any unit vector x, the sum of its
scores against every entry is ``x·total`` and the sum of their squares is
``xᵀ·second_moment·x``; only the few entries of one subject are then taken
away one by one. Every entry's Z-norm statistics therefore cost O(N·D²) at load
(no N×N score matrix: 100,000 entries need no more than a few hundred
milliseconds, see ``lfr-agent bench``), and a probe's T-norm statistics O(D²)
on top of the N scores the search computes anyway. Nothing is estimated or
sampled, so the device, the hub's calibration and the evaluation get the same
numbers from the same watchlist.

Statistics are population mean and standard deviation; a standard deviation
below ``MIN_STD`` (identical entries) is raised to it so no score divides by ~0.

A watchlist is only a cohort when it is large enough: every entry needs at
least ``SNORM_MIN_COHORT`` entries of other subjects. A smaller watchlist (a
handful of targets) cannot standardise anything (its means and deviations
would be drawn from a few scores), so S-norm refuses it (``CohortTooSmall``)
and the hub calibrates such a watchlist in cosine instead (docs/operator.md).

The statistics describe watchlist entries only. A probe's T-norm statistics
are locals of one call and are dropped with its scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.errors import CheckFailed

SCORE_KINDS = ("snorm", "cosine")
SNORM_MIN_COHORT = 50
MIN_STD = 1e-4
_BLOCK_ROWS = 16384  # rows converted to float64 per step (16 MB at 128-d)

FloatArray = npt.NDArray[np.float32]


class CohortTooSmall(CheckFailed):
    """The watchlist has too few entries of other subjects to standardise its scores."""


def check_score_kind(kind: str) -> str:
    if kind not in SCORE_KINDS:
        raise ValueError(f"score kind must be one of {', '.join(SCORE_KINDS)}, got {kind!r}")
    return kind


def subject_groups(refs: Sequence[str]) -> npt.NDArray[np.intp]:
    """The subject number of every entry: entries with the same reference share it."""
    numbers: dict[str, int] = {}
    return np.fromiter((numbers.setdefault(r, len(numbers)) for r in refs), np.intp, len(refs))


@dataclass(frozen=True)
class CohortStatistics:
    """What S-norm needs about a watchlist: its entries' Z-norm statistics and two sums."""

    z_mean: npt.NDArray[np.float32]  # N
    z_std: npt.NDArray[np.float32]  # N
    total: npt.NDArray[np.float64]  # D: sum of the entries
    second_moment: npt.NDArray[np.float64]  # D×D: sum of their outer products
    group_of: npt.NDArray[np.intp]  # N: subject number of each entry
    _order: npt.NDArray[np.intp]  # rows sorted by subject
    _bounds: npt.NDArray[np.intp]  # subject g's rows are _order[_bounds[g]:_bounds[g + 1]]
    smallest_cohort: int  # fewest other-subject entries any entry has

    def subject_rows(self, row: int) -> npt.NDArray[np.intp]:
        """The rows of the subject of ``row`` (``row`` included)."""
        g = self.group_of[row]
        return self._order[self._bounds[g] : self._bounds[g + 1]]

    def clear(self) -> None:
        """Overwrite every figure (they are derived from the watchlist's embeddings)."""
        for arr in (self.z_mean, self.z_std, self.total, self.second_moment):
            arr.fill(0)


def smallest_cohort(group_of: npt.NDArray[np.intp]) -> int:
    """Fewest entries of other subjects that any entry of the watchlist has."""
    if not len(group_of):
        return 0
    return int(len(group_of) - np.bincount(group_of).max())


def cohort_statistics(
    embeddings: npt.NDArray[np.floating], group_of: npt.NDArray[np.intp]
) -> CohortStatistics:
    """Exact Z-norm statistics of every row of ``embeddings`` (unit rows, as the gallery holds
    them) against the rows of other subjects. Raises CohortTooSmall below SNORM_MIN_COHORT."""
    n, dim = embeddings.shape
    fewest = smallest_cohort(group_of)
    if fewest < SNORM_MIN_COHORT:
        raise CohortTooSmall(
            f"S-norm needs every watchlist entry to have at least {SNORM_MIN_COHORT} entries of "
            f"other subjects; this watchlist of {n} entries gives {fewest}: use cosine scores"
        )
    total = np.zeros(dim, np.float64)
    second = np.zeros((dim, dim), np.float64)
    for start in range(0, n, _BLOCK_ROWS):
        block = embeddings[start : start + _BLOCK_ROWS].astype(np.float64)
        total += block.sum(axis=0)
        second += block.T @ block
    sums = np.empty(n, np.float64)
    squares = np.empty(n, np.float64)
    for start in range(0, n, _BLOCK_ROWS):
        block = embeddings[start : start + _BLOCK_ROWS].astype(np.float64)
        sums[start : start + len(block)] = block @ total
        squares[start : start + len(block)] = np.einsum("ij,ij->i", block @ second, block)
    counts = np.bincount(group_of)
    order = np.argsort(group_of, kind="stable").astype(np.intp)
    bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.intp)
    # Take away each entry's scores against its own subject (itself included).
    rows = np.nonzero(counts[group_of] == 1)[0]
    for start in range(0, len(rows), _BLOCK_ROWS):
        block = embeddings[rows[start : start + _BLOCK_ROWS]].astype(np.float64)
        self_score = np.einsum("ij,ij->i", block, block)
        sums[rows[start : start + _BLOCK_ROWS]] -= self_score
        squares[rows[start : start + _BLOCK_ROWS]] -= self_score**2
    for g in np.nonzero(counts > 1)[0]:
        members = order[bounds[g] : bounds[g + 1]]
        block = embeddings[members].astype(np.float64)
        gram = block @ block.T
        sums[members] -= gram.sum(axis=1)
        squares[members] -= (gram**2).sum(axis=1)
    others = (n - counts[group_of]).astype(np.float64)
    mean = sums / others
    std = np.sqrt(np.maximum(squares / others - mean**2, 0.0))
    return CohortStatistics(
        z_mean=mean.astype(np.float32),
        z_std=np.maximum(std, MIN_STD).astype(np.float32),
        total=total,
        second_moment=second,
        group_of=group_of,
        _order=order,
        _bounds=bounds,
        smallest_cohort=fewest,
    )


def snorm_scores(
    cosines: FloatArray, probes: FloatArray, stats: CohortStatistics
) -> npt.NDArray[np.float32]:
    """S-norm scores (M×N) from every probe's cosine scores against every entry (M×N).

    ``probes`` are the unit probe vectors (M×D) the cosines were computed from.
    """
    p = probes.astype(np.float64)
    n = cosines.shape[1]
    sums = p @ stats.total
    squares = np.einsum("ij,ij->i", p @ stats.second_moment, p)
    best = np.argmax(cosines, axis=1)
    counts = np.empty(len(p), np.float64)
    for i, b in enumerate(best):
        left_out = cosines[i, stats.subject_rows(int(b))].astype(np.float64)
        sums[i] -= left_out.sum()
        squares[i] -= (left_out**2).sum()
        counts[i] = n - len(left_out)
    t_mean = sums / counts
    t_std = np.maximum(np.sqrt(np.maximum(squares / counts - t_mean**2, 0.0)), MIN_STD)
    # 0.5·(s − μg)/σg + 0.5·(s − μp)/σp, as s·(a_g + c1) + (b_g + c0), in float32.
    half_inv = (0.5 / stats.z_std).astype(np.float32)
    offset = (-stats.z_mean * half_inv).astype(np.float32)
    c1 = (0.5 / t_std).astype(np.float32)[:, None]
    c0 = (-0.5 * t_mean / t_std).astype(np.float32)[:, None]
    out: npt.NDArray[np.float32] = half_inv[None, :] + c1
    out *= cosines
    out += offset[None, :]
    out += c0
    return out
