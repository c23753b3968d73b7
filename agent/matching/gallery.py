"""The deployment watchlist held in memory as a matrix, with top-k search by cosine or S-norm.

Rows are L2-normalised on load, so the dot product is the cosine similarity.
float16 storage halves memory (100k entries: 25 MB instead of 51 MB) but is
searched in blocks converted to float32, several times slower than float32
storage (measured here, one BLAS thread: 10k entries 0.2 ms float32 against
2.5 ms float16; 100k: 4–5 ms against 28 ms). Use float32 unless memory is short.
A single probe gains nothing from BLAS threads: run the agent with
OPENBLAS_NUM_THREADS=1 so they do not contend with the model threads.

``rank`` is the one place a probe is scored against the watchlist: the live
pipeline, ``lfr-agent eval`` and the hub's threshold calibration all call it.
With ``score="snorm"`` every entry's cosine is standardised against the
watchlist (``agent.matching.score_normalisation``) and the top k are taken by
S-norm score over all N entries, so the result is exact, not a re-ranking of
the cosine top k. The cohort statistics are computed once per gallery
(``prepare``), from the embeddings the gallery holds, and wiped with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.errors import UsageError
from agent.matching.score_normalisation import (
    CohortStatistics,
    check_score_kind,
    cohort_statistics,
    smallest_cohort,
    snorm_scores,
    subject_groups,
)

_BLOCK_ROWS = 16384  # float16 rows converted per step into a reused float32 buffer (8 MB at 128-d)


@dataclass(frozen=True)
class Ranking:
    """The top k entries of each probe (M×k each, best score first) in one score kind."""

    kind: str
    scores: npt.NDArray[np.float32]  # in ``kind``
    indices: npt.NDArray[np.intp]
    cosines: npt.NDArray[np.float32]  # the raw cosine of the same entries

    def first_above_floor(
        self, floor: float
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.intp]]:
        """Per probe, the best-scored entry whose cosine is at least ``floor`` (the device's
        ``matching.threshold_floor``): its score and row, or -inf and -1 when none is.

        This is what decides whether a face alerts: the matcher alerts an entry only when
        its score reaches the threshold and its cosine the floor, best score first.
        """
        m = len(self.scores)
        if not self.scores.shape[1]:
            return np.full(m, -np.inf, np.float32), np.full(m, -1, np.intp)
        ok = self.cosines >= floor
        first = np.argmax(ok, axis=1)  # the first True, or 0 when there is none
        rows = np.arange(m)
        has = ok[rows, first]
        scores = np.where(has, self.scores[rows, first], -np.inf).astype(np.float32)
        return scores, np.where(has, self.indices[rows, first], -1).astype(np.intp)


class Gallery:
    """Watchlist embeddings (N×D) and the entry reference of each row."""

    def __init__(self, embeddings: npt.NDArray[np.floating], refs: Sequence[str]) -> None:
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape[1] == 0:
            raise UsageError(f"gallery: embeddings must be an N×D matrix, got shape {emb.shape}")
        if emb.dtype not in (np.float16, np.float32):
            raise UsageError(f"gallery: embeddings must be float16 or float32, got {emb.dtype}")
        if len(refs) != emb.shape[0]:
            raise UsageError(f"gallery: {emb.shape[0]} embeddings but {len(refs)} refs")
        if not np.isfinite(emb).all():
            raise UsageError("gallery: embeddings contain NaN or infinity")
        norms = np.linalg.norm(emb.astype(np.float32), axis=1, keepdims=True)
        if emb.shape[0] and float(norms.min()) == 0.0:
            raise UsageError("gallery: an embedding is all zeros")
        self.dtype = emb.dtype
        self._emb: npt.NDArray[np.floating] = np.ascontiguousarray(
            (emb.astype(np.float32) / np.where(norms > 0, norms, 1)).astype(emb.dtype)
        )
        self.refs = list(refs)
        self.dim = int(emb.shape[1])
        self._buf: npt.NDArray[np.float32] | None = None
        self._cohort: CohortStatistics | None = None

    def __len__(self) -> int:
        return len(self.refs)

    @property
    def nbytes(self) -> int:
        return int(self._emb.nbytes)

    @property
    def smallest_cohort(self) -> int:
        """Fewest entries of other subjects any entry has (S-norm needs SNORM_MIN_COHORT)."""
        return smallest_cohort(subject_groups(self.refs))

    def prepare(self, score: str) -> None:
        """Compute what ``score`` needs now rather than at the first probe (S-norm: the cohort
        statistics). Raises CohortTooSmall when the watchlist is too small for S-norm."""
        if check_score_kind(score) == "snorm" and self._cohort is None:
            self._cohort = cohort_statistics(self._emb, subject_groups(self.refs))

    def search(
        self, probes: npt.NDArray[np.floating], top_k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.intp]]:
        """Top-k cosine scores and row indices per probe (M×k each, best first)."""
        r = self.rank(probes, top_k, "cosine")
        return r.scores, r.indices

    def rank(self, probes: npt.NDArray[np.floating], top_k: int, score: str) -> Ranking:
        """The top-k entries per probe by ``score`` ("cosine" or "snorm"), best first.

        k is min(top_k, len(gallery)). Probes are normalised here too.
        """
        check_score_kind(score)
        p = np.asarray(probes, dtype=np.float32)
        if p.ndim == 1:
            p = p[None, :]
        if p.ndim != 2 or p.shape[1] != self.dim:
            raise UsageError(f"gallery: probes must be M×{self.dim}, got shape {p.shape}")
        norms = np.linalg.norm(p, axis=1, keepdims=True)
        p = (p / np.where(norms > 0, norms, 1)).astype(np.float32)
        n = len(self)
        k = min(int(top_k), n)
        if k <= 0:
            empty = np.zeros((len(p), 0), np.float32)
            return Ranking(score, empty, np.zeros((len(p), 0), np.intp), empty)
        cosines = self._scores(p)
        if score == "snorm":
            self.prepare(score)
            assert self._cohort is not None
            ranked = snorm_scores(cosines, p, self._cohort)
        else:
            ranked = cosines
        if k < n:
            idx = np.argpartition(ranked, n - k, axis=1)[:, n - k :]
        else:
            idx = np.broadcast_to(np.arange(n), (len(p), n)).copy()
        top = np.take_along_axis(ranked, idx, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        idx = np.take_along_axis(idx, order, axis=1).astype(np.intp)
        return Ranking(
            score,
            np.take_along_axis(top, order, axis=1).astype(np.float32),
            idx,
            np.take_along_axis(cosines, idx, axis=1).astype(np.float32),
        )

    def _scores(self, p: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self._emb.dtype == np.float32:
            out: npt.NDArray[np.float32] = p @ self._emb.T
            return out
        if self._buf is None:
            self._buf = np.empty((min(_BLOCK_ROWS, len(self)), self.dim), dtype=np.float32)
        sims = np.empty((len(p), len(self)), dtype=np.float32)
        for start in range(0, len(self), _BLOCK_ROWS):
            block = self._emb[start : start + _BLOCK_ROWS]
            buf = self._buf[: len(block)]
            np.copyto(buf, block)
            sims[:, start : start + len(block)] = p @ buf.T
        return sims

    def clear(self) -> None:
        """Overwrite the embeddings in memory, then drop them and the refs."""
        if self._emb.size:
            self._emb.fill(0)
        if self._buf is not None:
            self._buf.fill(0)
            self._buf = None
        if self._cohort is not None:
            self._cohort.clear()
            self._cohort = None
        self._emb = np.zeros((0, self.dim), dtype=self.dtype)
        self.refs = []
