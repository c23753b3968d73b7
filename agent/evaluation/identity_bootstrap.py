"""Bootstrap confidence intervals over identities for split-averaged open-set figures.

Photos of one person are not independent trials, so the unit resampled is the
*cluster*: a labelled identity, or one unlabelled crowd photo (its faces are
different people, but nothing says the same person is not in another photo of
the same scene). A replicate draws as many clusters as there are, with
replacement; every probe then counts as often as its cluster was drawn. In
each split the threshold for a target FPIR is chosen again on the weighted
non-mated probes (at most ⌊target·W⌋ of total weight W alert, the rule of
``agent.matching.threshold_choice``), the TPIR taken on the weighted mated
probes, and the replicate's figure is the mean over splits, as the point
estimate is. The 95 % interval is the 2.5th to 97.5th percentile of the
replicates (percentile bootstrap). Everything is vectorised over replicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Counts = npt.NDArray[np.float64]  # replicates × clusters


def draw_counts(clusters: int, replicates: int, seed: int) -> Counts:
    """How often each cluster is drawn in each replicate (B×C)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, clusters, size=(replicates, clusters))
    out = np.zeros((replicates, clusters), np.float64)
    np.add.at(out, (np.repeat(np.arange(replicates), clusters), draws.ravel()), 1.0)
    return out


@dataclass(frozen=True)
class WeightedSplit:
    """One split's decisions with the cluster of every probe."""

    mated_scores: npt.NDArray[np.float32]
    mated_correct: npt.NDArray[np.bool_]
    mated_rank1: npt.NDArray[np.bool_]
    mated_clusters: npt.NDArray[np.intp]
    nonmated_scores: npt.NDArray[np.float32]
    nonmated_clusters: npt.NDArray[np.intp]


def _threshold_per_replicate(split: WeightedSplit, counts: Counts, target: float) -> Counts:
    """Per replicate, the score just below which the threshold sits: the (allowed+1)-th highest
    weighted non-mated score (a threshold strictly above it lets at most ``allowed`` alert);
    -inf when fewer than that many alert at all."""
    order = np.argsort(-split.nonmated_scores, kind="stable")
    scores = split.nonmated_scores[order].astype(np.float64)
    weights = counts[:, split.nonmated_clusters[order]]  # B × n
    allowed = np.floor(target * weights.sum(axis=1) + 1e-9)
    over = np.cumsum(weights, axis=1) > allowed[:, None]
    has = over.any(axis=1)
    first = np.argmax(over, axis=1)
    return np.where(has, scores[first], -np.inf)


def tpir_at_fpir_replicates(
    splits: Sequence[WeightedSplit], counts: Counts, target: float, lowest: float
) -> tuple[Counts, Counts]:
    """Split-averaged TPIR and threshold at ``target`` in every replicate (B each); no
    threshold goes below ``lowest`` (the score kind's lowest allowed threshold)."""
    tpirs, thresholds = [], []
    for split in splits:
        below = _threshold_per_replicate(split, counts, target)
        w = counts[:, split.mated_clusters]
        hit = (
            split.mated_correct[None, :]
            & (split.mated_scores[None, :] > below[:, None])
            & (split.mated_scores >= lowest)[None, :]
        )
        total = w.sum(axis=1)
        tpirs.append(np.where(total > 0, (w * hit).sum(axis=1) / np.maximum(total, 1e-12), np.nan))
        thresholds.append(np.where(np.isfinite(below), np.maximum(below, lowest), lowest))
    return np.nanmean(np.array(tpirs), axis=0), np.mean(np.array(thresholds), axis=0)


def rank1_replicates(splits: Sequence[WeightedSplit], counts: Counts) -> Counts:
    values = []
    for split in splits:
        w = counts[:, split.mated_clusters]
        total = w.sum(axis=1)
        values.append(
            np.where(
                total > 0, (w * split.mated_rank1).sum(axis=1) / np.maximum(total, 1e-12), np.nan
            )
        )
    out: Counts = np.nanmean(np.array(values), axis=0)
    return out


def percentile_interval(values: Counts) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if not len(v):
        return float("nan"), float("nan")
    lo, hi = np.percentile(v, [2.5, 97.5])
    return round(float(lo), 4), round(float(hi), 4)
