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

A decision is the camera's (``Gallery.rank`` in the score kind asked, cosine or
S-norm, then ``Ranking.first_above_floor``): a probe's score is that of the
best-scored entry among its top k whose cosine reaches the device floor. With
the default floor of -inf and k = 1 that is the plain top-1 score.

Small sets give noisy figures, so the split is repeated with seeded random
draws and the rates are averaged over splits at each threshold of a fixed grid
(one per score kind). The threshold at a target FPIR is chosen in each split by
the hub calibration's own rule (``agent.matching.threshold_choice``) on the
split's non-mated probes, and only where they number at least 1/target;
``identity_bootstrap`` puts a 95 % interval around every split-averaged figure.

**Crowd faces** (``ExtraFaces``): faces of people outside the labelled set, with no
identity labels (group photos). In each split whole photos are put on the
watchlist until it holds ``fillers`` of their faces: entries that are never
probed, as most of a real watchlist is; every other crowd face is a non-mated
probe. A watchlist of a few labelled identities is too small for S-norm (it needs
``SNORM_MIN_COHORT`` entries of other subjects per entry), and too few non-mated
probes cannot resolve low rates: both need them.

**Groups**: per-group TPIR and FPIR at the threshold calibrated on all probes
(``group_rates``), pooled over splits, with intervals from the same bootstrap.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.errors import UsageError
from agent.evaluation.identity_bootstrap import (
    WeightedSplit,
    draw_counts,
    percentile_interval,
    rank1_replicates,
    tpir_at_fpir_replicates,
)
from agent.matching.gallery import Gallery
from agent.matching.score_normalisation import CohortTooSmall
from agent.matching.threshold_choice import (
    TargetNotSupported,
    choose_threshold,
    lowest_threshold,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
THRESHOLD_GRID = np.round(np.arange(-0.2, 1.0001, 0.0025), 4)
SNORM_GRID = np.round(np.arange(-5.0, 40.0001, 0.025), 4)
GRIDS = {"cosine": THRESHOLD_GRID, "snorm": SNORM_GRID}
DEFAULT_FPIR_TARGETS = (0.1, 0.05, 0.01, 0.001, 1 / 6000)
#: A group with fewer identities than this says nothing about a differential.
MIN_GROUP_IDENTITIES = 5

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
class ExtraFaces:
    """Crowd faces: people outside the labelled set, not identity-labelled."""

    embeddings: FloatArray  # F×D, unit rows
    photo: npt.NDArray[np.intp]  # F: the photo each face is from (a bootstrap cluster)

    def __len__(self) -> int:
        return len(self.embeddings)


@dataclass(frozen=True)
class SplitScores:
    """Decisions of one watchlist split (no per-person detail is kept beyond cluster numbers)."""

    watchlist_size: int
    mated_scores: FloatArray  # decision score per mated probe, -inf when no face or no entry
    mated_correct: npt.NDArray[np.bool_]  # the deciding entry is the probe's identity
    nonmated_scores: FloatArray  # decision score per non-mated probe, -inf when none
    mated_rank1: npt.NDArray[np.bool_] | None = None  # top-1 is right (None: mated_correct)
    mated_clusters: npt.NDArray[np.intp] | None = None
    nonmated_clusters: npt.NDArray[np.intp] | None = None
    crowd_entries: int = 0  # crowd faces on the watchlist, never probed
    # Top-1 scores before the floor (separation figures), -inf where no face.
    mated_top1: FloatArray | None = None
    nonmated_top1: FloatArray | None = None

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
        right = self.mated_correct if self.mated_rank1 is None else self.mated_rank1
        return float(right.mean()) if len(right) else float("nan")

    def weighted(self) -> WeightedSplit:
        assert self.mated_clusters is not None and self.nonmated_clusters is not None
        return WeightedSplit(
            self.mated_scores,
            self.mated_correct,
            self.mated_correct if self.mated_rank1 is None else self.mated_rank1,
            self.mated_clusters,
            self.nonmated_scores,
            self.nonmated_clusters,
        )


def _pick_fillers(
    extra: ExtraFaces, rng: random.Random, fillers: int
) -> tuple[list[int], list[int]]:
    """Crowd faces on the watchlist (whole photos, until ``fillers`` faces) and the rest."""
    photos = sorted({int(p) for p in extra.photo})
    rng.shuffle(photos)
    on_list: set[int] = set()
    count = 0
    for p in photos:
        if count >= fillers:
            break
        on_list.add(p)
        count += int((extra.photo == p).sum())
    rows = range(len(extra))
    return [r for r in rows if extra.photo[r] in on_list], [
        r for r in rows if extra.photo[r] not in on_list
    ]


def score_split(
    identities: Sequence[str],
    embeddings: FloatArray,
    rng: random.Random,
    watchlist_fraction: float,
    *,
    score: str = "cosine",
    floor: float = -np.inf,
    top_k: int = 1,
    extra: ExtraFaces | None = None,
    fillers: int = 0,
) -> SplitScores:
    """Draw one watchlist split and return the decision of every probe.

    Raises CohortTooSmall for S-norm when the split's watchlist is too small.
    """
    names = sorted(set(identities))
    cluster_of = {name: i for i, name in enumerate(names)}
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
    entries = embeddings[enrol_rows]
    crowd_probes: list[int] = []
    if extra is not None and len(extra):
        on_list, crowd_probes = _pick_fillers(extra, rng, fillers)
        # A filler's reference is unique: it is never the identity of any probe.
        entries = np.concatenate([entries, extra.embeddings[on_list]])
        enrol_refs = enrol_refs + [f"\x00crowd{r}" for r in on_list]
    gallery = Gallery(entries, enrol_refs)
    enrolled = set(enrol_rows)
    mated = [i for i, ident in enumerate(identities) if ident in watch and i not in enrolled]
    nonmated = [i for i, ident in enumerate(identities) if ident not in watch]

    def decide(probes: FloatArray) -> tuple[FloatArray, list[str], list[str], FloatArray]:
        """Decision scores and refs, and the top-1 refs and scores (before the floor)."""
        if not len(probes):
            return np.zeros(0, np.float32), [], [], np.zeros(0, np.float32)
        ranking = gallery.rank(probes, top_k, score)
        scores, idx = ranking.first_above_floor(floor)
        refs = [gallery.refs[int(i)] if i >= 0 else "" for i in idx]
        top1 = [gallery.refs[int(i)] for i in ranking.indices[:, 0]]
        return scores, refs, top1, ranking.scores[:, 0]

    def labelled(rows: list[int]) -> tuple[FloatArray, list[str], list[str], FloatArray]:
        scores = np.full(len(rows), -np.inf, dtype=np.float32)
        top1_scores = np.full(len(rows), -np.inf, dtype=np.float32)
        refs = [""] * len(rows)
        top1 = [""] * len(rows)
        usable = [k for k, r in enumerate(rows) if found[r]]
        s, rf, t1, ts = decide(embeddings[[rows[k] for k in usable]])
        for j, k in enumerate(usable):
            scores[k], refs[k], top1[k], top1_scores[k] = s[j], rf[j], t1[j], ts[j]
        return scores, refs, top1, top1_scores

    try:
        m_scores, m_refs, m_top1, m_top1_scores = labelled(mated)
        n_scores, _, _, n_top1_scores = labelled(nonmated)
        n_clusters = [cluster_of[identities[r]] for r in nonmated]
        if crowd_probes:
            assert extra is not None
            c_scores, _, _, c_top1_scores = decide(extra.embeddings[crowd_probes])
            n_scores = np.concatenate([n_scores, c_scores])
            n_top1_scores = np.concatenate([n_top1_scores, c_top1_scores])
            n_clusters += [len(names) + int(extra.photo[r]) for r in crowd_probes]
    finally:
        gallery.clear()
    correct = np.array([m_refs[k] == identities[r] for k, r in enumerate(mated)], dtype=bool)
    rank1 = np.array([m_top1[k] == identities[r] for k, r in enumerate(mated)], dtype=bool)
    return SplitScores(
        len(enrol_rows),
        m_scores,
        correct,
        np.asarray(n_scores, np.float32),
        rank1,
        np.array([cluster_of[identities[r]] for r in mated], np.intp),
        np.array(n_clusters, np.intp),
        len(enrol_refs) - len(enrol_rows),
        np.where(rank1, m_top1_scores, -np.inf).astype(np.float32),
        np.asarray(n_top1_scores, np.float32),
    )


def tpir_at_fpir(
    split: SplitScores,
    target: float,
    score: str = "cosine",
    floor: float = -np.inf,
    min_false_alerts: int = 1,
) -> tuple[float, float]:
    """(TPIR, threshold) at ``target``: the threshold chosen on the split's non-mated probes
    by the calibration rule; (nan, nan) when they are fewer than ``min_false_alerts``/target."""
    try:
        choice = choose_threshold(split.nonmated_scores, target, score, floor, min_false_alerts)
    except TargetNotSupported:
        return float("nan"), float("nan")
    t = np.array([choice.threshold])
    return float(split.tpir(t)[0]), choice.threshold


@dataclass(frozen=True)
class OpenSetResult:
    """Rates averaged over splits, on the score kind's grid, plus the summary figures."""

    thresholds: npt.NDArray[np.float64]
    tpir: npt.NDArray[np.float64]
    fpir: npt.NDArray[np.float64]
    summary: dict[str, Any]

    @property
    def fnir(self) -> npt.NDArray[np.float64]:
        return 1.0 - self.tpir


def unavailable_result(score: str, reason: str) -> OpenSetResult:
    """A result with no figures, saying why (e.g. S-norm on a watchlist too small for it)."""
    grid = GRIDS[score].astype(np.float64)
    nan = np.full(len(grid), np.nan)
    return OpenSetResult(grid, nan, nan, {"score": score, "unavailable": reason})


def evaluate_openset(
    identities: Sequence[str],
    embeddings: FloatArray,
    *,
    seed: int = 0,
    splits: int = 20,
    watchlist_fraction: float = 0.5,
    report_thresholds: Sequence[float] = (),
    fpir_targets: Sequence[float] = DEFAULT_FPIR_TARGETS,
    score: str = "cosine",
    floor: float = -np.inf,
    top_k: int = 1,
    extra: ExtraFaces | None = None,
    fillers: int = 0,
    bootstrap: int = 0,
    groups: Mapping[str, str] | None = None,
    group_fpir: float | None = None,
) -> OpenSetResult:
    """Average open-set rates over ``splits`` seeded watchlist splits, with bootstrap 95 %
    intervals over identities (``bootstrap`` replicates; 0: none). The same seed draws the
    same splits for every score kind, so kinds are compared on the same watchlists."""
    if len(identities) != len(embeddings):
        raise UsageError(f"eval: {len(identities)} labels but {len(embeddings)} embeddings")
    if splits < 1:
        raise UsageError(f"eval: splits must be at least 1, got {splits}")
    if not 0 < watchlist_fraction < 1:
        raise UsageError(f"eval: watchlist fraction must be in (0, 1), got {watchlist_fraction}")
    rng = random.Random(seed)
    try:
        results = [
            score_split(
                identities,
                embeddings,
                rng,
                watchlist_fraction,
                score=score,
                floor=floor,
                top_k=top_k,
                extra=extra,
                fillers=fillers,
            )
            for _ in range(splits)
        ]
    except CohortTooSmall as exc:
        return unavailable_result(score, str(exc))
    grid = GRIDS[score].astype(np.float64)
    tpir = np.nanmean([r.tpir(grid) for r in results], axis=0)
    fpir = np.nanmean([r.fpir(grid) for r in results], axis=0)
    names = sorted(set(identities))
    clusters = len(names) + (int(extra.photo.max()) + 1 if extra is not None and len(extra) else 0)
    counts = draw_counts(clusters, bootstrap, seed) if bootstrap else None
    weighted = [r.weighted() for r in results]
    nonmated_min = min(len(r.nonmated_scores) for r in results)
    at_fpir: dict[str, Any] = {}
    for target in fpir_targets:
        pairs = [tpir_at_fpir(r, target, score, floor) for r in results]
        entry: dict[str, Any] = {
            "tpir": _mean([p[0] for p in pairs]),
            "threshold_mean": _mean([p[1] for p in pairs]),
            "few_nonmated": nonmated_min * target < 3,
        }
        if nonmated_min * target < 1:
            entry["unsupported"] = (
                f"needs at least {math.ceil(1 / target - 1e-9)} non-mated probes per split, "
                f"the smallest split has {nonmated_min}"
            )
        elif counts is not None:
            lowest = lowest_threshold(score, floor)
            t_reps, thr_reps = tpir_at_fpir_replicates(weighted, counts, target, lowest)
            entry["tpir_ci95"] = percentile_interval(t_reps)
            entry["threshold_ci95"] = percentile_interval(thr_reps)
        at_fpir[f"{target:g}"] = entry
    at_threshold = {}
    for t in report_thresholds:
        arr = np.array([t], dtype=np.float64)
        at_threshold[f"{t:g}"] = {
            "tpir": _mean([float(r.tpir(arr)[0]) for r in results]),
            "fpir": _mean([float(r.fpir(arr)[0]) for r in results]),
        }
    found = np.asarray(~np.isnan(embeddings).any(axis=1), dtype=bool)
    summary: dict[str, Any] = {
        "score": score,
        "floor": None if not math.isfinite(floor) else floor,
        "photos": len(identities),
        "identities": len(names),
        "no_face_photos": int((~found).sum()),
        "crowd_faces": len(extra) if extra is not None else 0,
        "splits": splits,
        "seed": seed,
        "watchlist_size_mean": _mean([float(r.watchlist_size) for r in results]),
        "watchlist_entries_mean": _mean(
            [float(r.watchlist_size + r.crowd_entries) for r in results]
        ),
        "mated_probes_per_split": _mean([float(len(r.mated_scores)) for r in results]),
        "nonmated_probes_per_split": _mean([float(len(r.nonmated_scores)) for r in results]),
        "rank1": _mean([r.rank1 for r in results]),
        "tpir_at_fpir": at_fpir,
        "at_threshold": at_threshold,
        "eer": _eer(tpir, fpir),
        "d_prime": _pooled_d_prime(results),
        # Where the rates saturate on a small set, the score margin still tells paths apart.
        "mated_top1_score_median": _mean([_finite_median(_top1(r)[0]) for r in results]),
        "nonmated_top1_score_max": _mean([_finite_max(_top1(r)[1]) for r in results]),
    }
    if counts is not None:
        summary["rank1_ci95"] = percentile_interval(rank1_replicates(weighted, counts))
        summary["bootstrap"] = {"replicates": bootstrap, "clusters": clusters}
    if groups is not None:
        target = group_fpir or _strictest(at_fpir, fpir_targets)
        summary["groups"] = group_rates(results, names, groups, target, score, floor, counts)
    return OpenSetResult(grid, tpir, fpir, summary)


def _strictest(at_fpir: Mapping[str, Any], targets: Sequence[float]) -> float:
    """The lowest target with a figure (the group rates' operating point)."""
    supported = [t for t in targets if "unsupported" not in at_fpir[f"{t:g}"]]
    return min(supported) if supported else max(targets)


def group_rates(
    results: Sequence[SplitScores],
    names: Sequence[str],
    groups: Mapping[str, str],
    target: float,
    score: str,
    floor: float,
    counts: npt.NDArray[np.float64] | None,
) -> dict[str, Any]:
    """Per group: TPIR and FPIR at each split's threshold for ``target`` (pooled over splits),
    with bootstrap intervals, and the max/min ratios between groups large enough to count."""
    label_of = [groups.get(name) for name in names]  # by cluster number; crowd: none
    labels = sorted({g for g in label_of if g is not None})
    tallies = {g: [0.0, 0.0, 0.0, 0.0] for g in labels}  # hits, mated, alerts, non-mated
    rep = {g: np.zeros((4, len(counts))) if counts is not None else None for g in labels}
    for r in results:
        try:
            threshold = choose_threshold(r.nonmated_scores, target, score, floor, 1).threshold
        except TargetNotSupported:
            continue
        assert r.mated_clusters is not None and r.nonmated_clusters is not None
        hit = r.mated_correct & (r.mated_scores >= threshold)
        alert = r.nonmated_scores >= threshold
        for g in labels:
            m = np.array([c < len(names) and label_of[c] == g for c in r.mated_clusters], bool)
            n = np.array([c < len(names) and label_of[c] == g for c in r.nonmated_clusters], bool)
            t = tallies[g]
            t[0] += float(hit[m].sum())
            t[1] += float(m.sum())
            t[2] += float(alert[n].sum())
            t[3] += float(n.sum())
            reps = rep[g]
            if reps is not None and counts is not None:
                wm = counts[:, r.mated_clusters[m]]
                wn = counts[:, r.nonmated_clusters[n]]
                reps[0] += (wm * hit[m]).sum(axis=1)
                reps[1] += wm.sum(axis=1)
                reps[2] += (wn * alert[n]).sum(axis=1)
                reps[3] += wn.sum(axis=1)
    out: dict[str, Any] = {"target_fpir": target, "groups": {}}
    for g in labels:
        members = sum(1 for lab in label_of if lab == g)
        hits, mated_n, alerts, nonmated_n = tallies[g]
        entry: dict[str, Any] = {
            "identities": members,
            "mated_probes": int(mated_n),
            "nonmated_probes": int(nonmated_n),
            "tpir": round(hits / mated_n, 4) if mated_n else float("nan"),
            "fpir": round(alerts / nonmated_n, 4) if nonmated_n else float("nan"),
            "too_small": members < MIN_GROUP_IDENTITIES,
        }
        reps = rep[g]
        if reps is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                entry["tpir_ci95"] = percentile_interval(reps[0] / reps[1])
                entry["fpir_ci95"] = percentile_interval(reps[2] / reps[3])
        out["groups"][g] = entry
    counted = [e for e in out["groups"].values() if not e["too_small"]]
    for rate in ("tpir", "fpir"):
        values = [e[rate] for e in counted if not math.isnan(e[rate])]
        if len(values) < 2:
            out[f"{rate}_max_min_ratio"] = float("nan")
        elif min(values) == 0:
            out[f"{rate}_max_min_ratio"] = float("inf") if max(values) > 0 else 1.0
        else:
            out[f"{rate}_max_min_ratio"] = round(max(values) / min(values), 3)
    return out


def read_groups(path: Path) -> dict[str, str]:
    """``identity,group`` rows (a header row ``identity,group`` is optional) → a mapping."""
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"eval: --groups {path}: cannot read ({exc.__class__.__name__})") from exc
    if rows and [c.strip().lower() for c in rows[0]] == ["identity", "group"]:
        rows = rows[1:]
    out: dict[str, str] = {}
    for i, row in enumerate(rows, 1):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise UsageError(f"eval: --groups {path}: row {i} is not 'identity,group'")
        ident, group = row[0].strip(), row[1].strip()
        if ident in out and out[ident] != group:
            raise UsageError(f"eval: --groups {path}: identity {ident[:60]!r} is in two groups")
        out[ident] = group
    if not out:
        raise UsageError(f"eval: --groups {path}: no rows")
    return out


def d_prime(mated: Sequence[float], nonmated: Sequence[float]) -> float:
    """Separation of two score distributions in pooled standard deviations (NaN if too few)."""
    m, n = np.asarray(mated, np.float64), np.asarray(nonmated, np.float64)
    if len(m) < 2 or len(n) < 2:
        return float("nan")
    spread = np.sqrt((m.var(ddof=1) + n.var(ddof=1)) / 2)
    return float(abs(m.mean() - n.mean()) / spread) if spread > 0 else float("inf")


def _top1(r: SplitScores) -> tuple[FloatArray, FloatArray]:
    """Top-1 scores before the floor: of mated probes whose top-1 is right, of non-mated ones
    (the decision scores where a split kept none)."""
    if r.mated_top1 is not None and r.nonmated_top1 is not None:
        return r.mated_top1, r.nonmated_top1
    return r.mated_scores[r.mated_correct], r.nonmated_scores


def _pooled_d_prime(results: Sequence[SplitScores]) -> float:
    """d′ of the top-1 scores (before the floor, which would cut the non-mated ones off):
    right-identity mated against non-mated, pooled over all splits."""
    mated = np.concatenate([_top1(r)[0] for r in results])
    nonmated = np.concatenate([_top1(r)[1] for r in results])
    value = d_prime(mated[np.isfinite(mated)].tolist(), nonmated[np.isfinite(nonmated)].tolist())
    return round(value, 3)


def _eer(tpir: npt.NDArray[np.float64], fpir: npt.NDArray[np.float64]) -> float:
    """Rate where FNIR and FPIR cross on the averaged curves."""
    diff = (1.0 - tpir) - fpir
    if np.isnan(diff).all():
        return float("nan")
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
