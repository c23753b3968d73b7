"""Shot fusion compared on tracks built from a labelled photo set.

A live track gives several shots of one person; ``matching.fusion`` decides how
they are combined (see ``agent.vision.shot_fusion``). Here a track is k photos
of one identity, each weighted by its quality rank as in the live pipeline.
In every seeded split, one photo per watchlist identity is enrolled; a mated
track is k *other* photos of a watchlist identity, a non-mated track k photos
of a non-mated identity (identities with too few photos with a face are left
out of that role). Each track is fused with the product's ``ShotAccumulator``
by every method, shot by shot against the gallery's top-k, exactly as
``FacePipeline`` does. The matcher is asked after every shot, so a track is scored
by the best top-1 (entry, score) over its shots, not by its last one. "one shot"
is the first shot of the same tracks alone.

Per method: TPIR at fixed FPIR (averaged over splits, as the photo-level
figures) and d′ = |μm − μn| / √((σm² + σn²)/2), where the mated scores are the
top-1 scores of mated tracks whose top-1 is the right identity and the
non-mated scores the top-1 scores of non-mated tracks, pooled over splits.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.errors import UsageError
from agent.evaluation.openset import SplitScores, d_prime, tpir_at_fpir
from agent.matching.gallery import Gallery
from agent.vision.shot_fusion import FUSION_METHODS, ShotAccumulator

ONE_SHOT = "one shot"
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _Track:
    identity: str
    rows: list[int]
    mated: bool


def _draw_split(
    identities: Sequence[str],
    usable: npt.NDArray[np.bool_],
    rng: random.Random,
    watchlist_fraction: float,
    shots: int,
) -> tuple[list[int], list[str], list[_Track]]:
    names = sorted(set(identities))
    n_watch = min(len(names) - 1, max(1, round(watchlist_fraction * len(names))))
    watch = set(rng.sample(names, n_watch))
    enrol_rows: list[int] = []
    enrol_refs: list[str] = []
    tracks: list[_Track] = []
    for name in names:
        rows = [i for i, ident in enumerate(identities) if ident == name and usable[i]]
        if name in watch:
            if not rows:
                continue
            enrol = rng.choice(rows)
            enrol_rows.append(enrol)
            enrol_refs.append(name)
            rest = [r for r in rows if r != enrol]
            if len(rest) >= shots:
                tracks.append(_Track(name, rng.sample(rest, shots), True))
        elif len(rows) >= shots:
            tracks.append(_Track(name, rng.sample(rows, shots), False))
    return enrol_rows, enrol_refs, tracks


def _fuse(
    method: str,
    track: _Track,
    embeddings: FloatArray,
    ranks: npt.NDArray[np.float64],
    gallery: Gallery,
    top_k: int,
    score: str = "cosine",
) -> tuple[str, float]:
    """The track's best top-1 (entry, score) over its shots so far.

    The live pipeline asks the matcher after every shot, so a track alerts as soon as
    any shot's fused top-1 reaches the threshold, not only after its last shot.
    """
    acc = ShotAccumulator("best_of" if method == ONE_SHOT else method)
    rows = track.rows[:1] if method == ONE_SHOT else track.rows
    best: tuple[int, float, float] | None = None
    for r in rows:
        probe = acc.add(embeddings[r], float(ranks[r]))
        top_k_ranking = gallery.rank(probe[None, :], top_k, score)
        top = acc.fuse_scores(
            top_k_ranking.scores[0], top_k_ranking.indices[0], top_k_ranking.cosines[0]
        )[0]
        if best is None or top[1] > best[1]:
            best = top
    acc.clear()
    assert best is not None
    return gallery.refs[best[0]], best[1]


def compare_fusion(
    identities: Sequence[str],
    embeddings: FloatArray,
    ranks: npt.NDArray[np.float64],
    *,
    shots: int = 3,
    seed: int = 0,
    splits: int = 50,
    watchlist_fraction: float = 0.5,
    top_k: int = 3,
    fpir_targets: Sequence[float] = (0.01, 0.05, 0.1),
    score: str = "cosine",
    fillers: FloatArray | None = None,
) -> dict[str, Any]:
    """TPIR@FPIR and d′ of each fusion method (and one shot) on k-photo tracks.

    ``fillers`` (crowd faces) join every split's watchlist as entries never probed, which
    S-norm needs (CohortTooSmall otherwise). TPIR at a target FPIR is given only where a
    split has at least 1/target non-mated tracks (NaN otherwise)."""
    if shots < 2:
        raise UsageError(f"eval: a fused track needs at least 2 shots, got {shots}")
    if not len(identities) == len(embeddings) == len(ranks):
        raise UsageError("eval: labels, embeddings and quality ranks differ in length")
    usable = np.asarray(~np.isnan(embeddings).any(axis=1), dtype=bool)
    methods = (ONE_SHOT, *FUSION_METHODS)
    rng = random.Random(seed)
    per_split: dict[str, list[SplitScores]] = {m: [] for m in methods}
    mated_pool: dict[str, list[float]] = {m: [] for m in methods}
    nonmated_pool: dict[str, list[float]] = {m: [] for m in methods}
    mated_tracks = nonmated_tracks = 0
    for _ in range(splits):
        enrol_rows, enrol_refs, tracks = _draw_split(
            identities, usable, rng, watchlist_fraction, shots
        )
        if not enrol_rows:
            raise UsageError("eval: no watchlist identity has a photo with a detectable face")
        entries, refs = embeddings[enrol_rows], list(enrol_refs)
        if fillers is not None and len(fillers):
            entries = np.concatenate([entries, fillers])
            refs += [f"\x00crowd{i}" for i in range(len(fillers))]
        gallery = Gallery(entries, refs)
        mated_tracks += sum(t.mated for t in tracks)
        nonmated_tracks += sum(not t.mated for t in tracks)
        for method in methods:
            m_scores, m_correct, n_scores = [], [], []
            for track in tracks:
                ref, value = _fuse(method, track, embeddings, ranks, gallery, top_k, score)
                if track.mated:
                    m_scores.append(value)
                    m_correct.append(ref == track.identity)
                    if ref == track.identity:
                        mated_pool[method].append(value)
                else:
                    n_scores.append(value)
                    nonmated_pool[method].append(value)
            per_split[method].append(
                SplitScores(
                    len(enrol_rows),
                    np.asarray(m_scores, np.float32),
                    np.asarray(m_correct, bool),
                    np.asarray(n_scores, np.float32),
                )
            )
        gallery.clear()
    if not mated_tracks or not nonmated_tracks:
        raise UsageError(
            f"eval: too few photos per identity for {shots}-shot tracks "
            f"(mated tracks {mated_tracks}, non-mated {nonmated_tracks})"
        )
    out: dict[str, Any] = {
        "score": score,
        "shots_per_track": shots,
        "splits": splits,
        "mated_tracks_per_split": round(mated_tracks / splits, 2),
        "nonmated_tracks_per_split": round(nonmated_tracks / splits, 2),
        "methods": {},
    }
    for method in methods:
        results = per_split[method]
        at_fpir = {}
        for target in fpir_targets:
            values = [tpir_at_fpir(r, target, score)[0] for r in results if len(r.mated_scores)]
            at_fpir[f"{target:g}"] = _mean(values)
        mated, nonmated = mated_pool[method], nonmated_pool[method]
        out["methods"][method] = {
            "d_prime": round(d_prime(mated, nonmated), 3),
            "tpir_at_fpir": at_fpir,
            "rank1": _mean([r.rank1 for r in results]),
            "mated_score_min": round(min(mated), 4) if mated else float("nan"),
            "nonmated_score_max": round(max(nonmated), 4) if nonmated else float("nan"),
        }
    return out


def _mean(values: Sequence[float]) -> float:
    arr = np.asarray(values, np.float64)
    arr = arr[~np.isnan(arr)]
    return round(float(arr.mean()), 4) if len(arr) else float("nan")
