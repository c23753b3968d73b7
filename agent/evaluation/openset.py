"""Open-set identification metrics for a watchlist, after the NPL method for live facial recognition.

A labelled photo set (``<identity>/<image>``) is split at random into
watchlist identities and non-mated identities. One photo per watchlist
identity is enrolled; every other photo of a watchlist identity is a mated
probe, every photo of a non-mated identity is a non-mated probe. For a
threshold T:

* TPIR(T): share of mated probes whose top gallery match is the right
  identity with a score >= T (a probe where no face is found counts as missed);
* FNIR(T) = 1 - TPIR(T);
* FPIR(T): share of non-mated probes whose top score is >= T;
* rank-1: share of mated probes whose top match is the right identity, at any score.

Small sets give noisy figures, so the split is repeated with seeded random
draws and the rates are averaged over splits at each threshold of a fixed grid.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.errors import UsageError
from agent.matching.gallery import Gallery

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
THRESHOLD_GRID = np.round(np.arange(-0.2, 1.0001, 0.0025), 4)
DEFAULT_FPIR_TARGETS = (0.01, 0.05, 0.1)

FloatArray = npt.NDArray[np.float32]
Embedder = Callable[[npt.NDArray[np.uint8]], "FloatArray | None"]


@dataclass(frozen=True)
class LabelledPhoto:
    identity: str
    path: Path


def list_labelled_photos(data_dir: Path) -> list[LabelledPhoto]:
    """Every ``<identity>/<image>`` under ``data_dir``, sorted; UsageError if unusable."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UsageError(f"eval: {data_dir} is not a folder")
    photos = [
        LabelledPhoto(d.name, f)
        for d in sorted(p for p in data_dir.iterdir() if p.is_dir())
        for f in sorted(d.iterdir())
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    ]
    identities = {p.identity for p in photos}
    if len(identities) < 3:
        raise UsageError(
            f"eval: {data_dir} needs at least 3 identity folders of photos, found {len(identities)}"
        )
    return photos


def embed_photos(photos: Sequence[LabelledPhoto], embed: Embedder, dim: int) -> FloatArray:
    """N×dim embeddings in photo order; a row of NaN where no face is found."""
    out = np.full((len(photos), dim), np.nan, dtype=np.float32)
    for i, photo in enumerate(photos):
        image = cv2.imread(str(photo.path), cv2.IMREAD_COLOR)
        if image is None:
            raise UsageError(f"eval: {photo.path}: not a readable image")
        emb = embed(image)  # type: ignore[arg-type]
        if emb is not None:
            out[i] = emb
    return out


@dataclass(frozen=True)
class SplitScores:
    """Top-1 outcomes of one watchlist split (no per-person detail is kept)."""

    watchlist_size: int
    mated_scores: FloatArray  # top score per mated probe, -inf when no face
    mated_correct: npt.NDArray[np.bool_]  # top match is the probe's identity
    nonmated_scores: FloatArray  # top score per non-mated probe, -inf when no face

    def tpir(self, thresholds: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        if not len(self.mated_scores):
            return np.full(len(thresholds), np.nan)
        hit = self.mated_correct[None, :] & (self.mated_scores[None, :] >= thresholds[:, None])
        return np.asarray(hit.mean(axis=1), dtype=np.float64)

    def fpir(self, thresholds: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        if not len(self.nonmated_scores):
            return np.full(len(thresholds), np.nan)
        return np.asarray(
            (self.nonmated_scores[None, :] >= thresholds[:, None]).mean(axis=1), dtype=np.float64
        )

    @property
    def rank1(self) -> float:
        return float(self.mated_correct.mean()) if len(self.mated_correct) else float("nan")


def score_split(
    identities: Sequence[str],
    embeddings: FloatArray,
    rng: random.Random,
    watchlist_fraction: float,
) -> SplitScores:
    """Draw one watchlist split and return the top-1 outcomes of every probe."""
    names = sorted(set(identities))
    n_watch = min(len(names) - 1, max(1, round(watchlist_fraction * len(names))))
    watch = set(rng.sample(names, n_watch))
    found = np.asarray(~np.isnan(embeddings).any(axis=1), dtype=bool)
    enrol_rows: list[int] = []
    enrol_refs: list[str] = []
    for name in sorted(watch):
        rows = [i for i, ident in enumerate(identities) if ident == name and found[i]]
        if rows:  # an identity with no usable photo cannot be enrolled
            row = rng.choice(rows)
            enrol_rows.append(row)
            enrol_refs.append(name)
    if not enrol_rows:
        raise UsageError("eval: no watchlist identity has a photo with a detectable face")
    gallery = Gallery(embeddings[enrol_rows], enrol_refs)
    enrolled = set(enrol_rows)
    mated = [i for i, ident in enumerate(identities) if ident in watch and i not in enrolled]
    nonmated = [i for i, ident in enumerate(identities) if ident not in watch]

    def top1(rows: list[int]) -> tuple[FloatArray, list[str]]:
        scores = np.full(len(rows), -np.inf, dtype=np.float32)
        refs = [""] * len(rows)
        usable = [k for k, r in enumerate(rows) if found[r]]
        if usable:
            s, idx = gallery.search(embeddings[[rows[k] for k in usable]], 1)
            for j, k in enumerate(usable):
                scores[k] = s[j, 0]
                refs[k] = gallery.refs[int(idx[j, 0])]
        return scores, refs

    m_scores, m_refs = top1(mated)
    n_scores, _ = top1(nonmated)
    correct = np.array([m_refs[k] == identities[r] for k, r in enumerate(mated)], dtype=bool)
    return SplitScores(len(enrol_rows), m_scores, correct, n_scores)


def tpir_at_fpir(split: SplitScores, target: float) -> tuple[float, float]:
    """(TPIR, threshold) at the lowest grid threshold whose FPIR does not exceed ``target``."""
    fpir = split.fpir(THRESHOLD_GRID)
    ok = np.nonzero(fpir <= target)[0]
    if not len(ok):
        return float("nan"), float("nan")
    t = THRESHOLD_GRID[ok[0] : ok[0] + 1]
    return float(split.tpir(t)[0]), float(t[0])


@dataclass(frozen=True)
class OpenSetResult:
    """Rates averaged over splits, on ``THRESHOLD_GRID``, plus the summary figures."""

    thresholds: npt.NDArray[np.float64]
    tpir: npt.NDArray[np.float64]
    fpir: npt.NDArray[np.float64]
    summary: dict[str, Any]

    @property
    def fnir(self) -> npt.NDArray[np.float64]:
        return 1.0 - self.tpir


def evaluate_openset(
    identities: Sequence[str],
    embeddings: FloatArray,
    *,
    seed: int = 0,
    splits: int = 20,
    watchlist_fraction: float = 0.5,
    report_thresholds: Sequence[float] = (),
    fpir_targets: Sequence[float] = DEFAULT_FPIR_TARGETS,
) -> OpenSetResult:
    """Average open-set rates over ``splits`` seeded watchlist splits."""
    if len(identities) != len(embeddings):
        raise UsageError(f"eval: {len(identities)} labels but {len(embeddings)} embeddings")
    if splits < 1:
        raise UsageError(f"eval: splits must be at least 1, got {splits}")
    if not 0 < watchlist_fraction < 1:
        raise UsageError(f"eval: watchlist fraction must be in (0, 1), got {watchlist_fraction}")
    rng = random.Random(seed)
    results = [score_split(identities, embeddings, rng, watchlist_fraction) for _ in range(splits)]
    grid = THRESHOLD_GRID.astype(np.float64)
    tpir = np.nanmean([r.tpir(grid) for r in results], axis=0)
    fpir = np.nanmean([r.fpir(grid) for r in results], axis=0)
    at_fpir = {}
    for target in fpir_targets:
        pairs = [tpir_at_fpir(r, target) for r in results]
        at_fpir[f"{target:g}"] = {
            "tpir": _mean([p[0] for p in pairs]),
            "threshold_mean": _mean([p[1] for p in pairs]),
        }
    at_threshold = {}
    for t in report_thresholds:
        arr = np.array([t], dtype=np.float64)
        at_threshold[f"{t:g}"] = {
            "tpir": _mean([float(r.tpir(arr)[0]) for r in results]),
            "fpir": _mean([float(r.fpir(arr)[0]) for r in results]),
        }
    found = np.asarray(~np.isnan(embeddings).any(axis=1), dtype=bool)
    summary: dict[str, Any] = {
        "photos": len(identities),
        "identities": len(set(identities)),
        "no_face_photos": int((~found).sum()),
        "splits": splits,
        "seed": seed,
        "watchlist_size_mean": _mean([float(r.watchlist_size) for r in results]),
        "mated_probes_per_split": _mean([float(len(r.mated_scores)) for r in results]),
        "nonmated_probes_per_split": _mean([float(len(r.nonmated_scores)) for r in results]),
        "rank1": _mean([r.rank1 for r in results]),
        "tpir_at_fpir": at_fpir,
        "at_threshold": at_threshold,
        "eer": _eer(tpir, fpir),
        # Where the rates saturate on a small set, the score margin still tells paths apart.
        "mated_top1_score_median": _mean(
            [_finite_median(r.mated_scores[r.mated_correct]) for r in results]
        ),
        "nonmated_top1_score_max": _mean([_finite_max(r.nonmated_scores) for r in results]),
    }
    return OpenSetResult(grid, tpir, fpir, summary)


def _eer(tpir: npt.NDArray[np.float64], fpir: npt.NDArray[np.float64]) -> float:
    """Rate where FNIR and FPIR cross on the averaged curves."""
    diff = (1.0 - tpir) - fpir
    i = int(np.nanargmin(np.abs(diff)))
    return round(float(((1.0 - tpir[i]) + fpir[i]) / 2), 4)


def _mean(values: Sequence[float]) -> float:
    arr = np.array(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return round(float(arr.mean()), 4) if len(arr) else float("nan")


def _finite_median(values: FloatArray) -> float:
    v = values[np.isfinite(values)]
    return float(np.median(v)) if len(v) else float("nan")


def _finite_max(values: FloatArray) -> float:
    v = values[np.isfinite(values)]
    return float(v.max()) if len(v) else float("nan")
