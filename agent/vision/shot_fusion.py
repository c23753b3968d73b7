"""Fusing several shots of one track into one match decision.

Two methods:
- ``best_of``: each shot is compared with the gallery; a watchlist entry's score
  is the best score any shot reached.
- ``weighted_mean``: the shots' embeddings are averaged with their quality rank
  as weight and the mean (re-normalised) is compared once.
Which one decides is the ``matching.fusion`` setting. ``lfr-agent eval openset``
compares them on tracks of ``--track-shots`` photos per identity (TPIR at fixed
FPIR and d′ for each method and for one shot alone; see its "shot fusion"
lines and ``summary.json``); as here, a track is scored by its best fused
result after any shot, since the matcher is asked after every shot. On the
shared face photos (README, "Performance and accuracy") the weighted mean
separates mated from non-mated track scores better than best-of (d′ 9.43
against 8.81, one shot 7.31) and raises the lowest mated track score (0.602
against 0.589, one shot 0.501). It does not lower the highest non-mated score
below one shot's (0.395 for both, best-of 0.396): its first shot is one shot
alone. Hence the default: best-of lets any single lucky shot of a stranger
decide, the mean dilutes a lucky later shot with the others.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FUSION_METHODS = ("best_of", "weighted_mean")


class ShotAccumulator:
    """The shots of one live track, held only while the track lives (then ``clear()``)."""

    __slots__ = ("_sum", "best_scores", "method", "shots")

    def __init__(self, method: str) -> None:
        if method not in FUSION_METHODS:
            raise ValueError(f"fusion method must be one of {FUSION_METHODS}, got {method!r}")
        self.method = method
        self.shots = 0
        self._sum: npt.NDArray[np.float32] | None = None
        # gallery index -> (best score, the cosine of that shot) (best_of)
        self.best_scores: dict[int, tuple[float, float]] = {}

    def add(self, embedding: npt.NDArray[np.float32], weight: float) -> npt.NDArray[np.float32]:
        """Add a shot; returns the probe to compare (the shot, or the running fused mean)."""
        self.shots += 1
        if self.method == "best_of":
            return embedding
        w = np.float32(max(weight, 1e-3))
        self._sum = embedding * w if self._sum is None else self._sum + embedding * w
        norm = float(np.linalg.norm(self._sum))
        return (self._sum / norm).astype(np.float32) if norm > 0 else embedding

    def fuse_scores(
        self,
        scores: npt.NDArray[np.float32],
        indices: npt.NDArray[np.intp],
        cosines: npt.NDArray[np.float32],
    ) -> list[tuple[int, float, float]]:
        """(gallery index, fused score, its cosine) for this probe's top-k, best score first.

        ``scores`` are in the deployment's score kind, ``cosines`` the raw cosine of the
        same entries (the matcher's floor applies to them).
        """
        if self.method == "weighted_mean":
            return [
                (int(i), float(s), float(c))
                for s, i, c in zip(scores, indices, cosines, strict=True)
            ]
        for s, i, c in zip(scores, indices, cosines, strict=True):
            i = int(i)
            if i not in self.best_scores or float(s) > self.best_scores[i][0]:
                self.best_scores[i] = (float(s), float(c))
        return sorted(((i, s, c) for i, (s, c) in self.best_scores.items()), key=lambda t: -t[1])

    def clear(self) -> None:
        if self._sum is not None:
            self._sum.fill(0)
        self._sum = None
        self.best_scores.clear()
        self.shots = 0
