"""The deployment watchlist held in memory as a matrix, with top-k cosine search.

Rows are L2-normalised on load, so the dot product is the cosine similarity.
float16 storage halves memory (100k entries: 25 MB instead of 51 MB) but is
searched in blocks converted to float32, several times slower than float32
storage (measured here, one BLAS thread: 10k entries 0.2 ms float32 against
2.5 ms float16; 100k: 4–5 ms against 28 ms). Use float32 unless memory is short.
A single probe gains nothing from BLAS threads: run the agent with
OPENBLAS_NUM_THREADS=1 so they do not contend with the model threads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from agent.errors import UsageError

_BLOCK_ROWS = 16384  # float16 rows converted per step into a reused float32 buffer (8 MB at 128-d)


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

    def __len__(self) -> int:
        return len(self.refs)

    @property
    def nbytes(self) -> int:
        return int(self._emb.nbytes)

    def search(
        self, probes: npt.NDArray[np.floating], top_k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.intp]]:
        """Top-k cosine scores and row indices per probe (M×k each, best first).

        k is min(top_k, len(gallery)). Probes are normalised here too.
        """
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
            return np.zeros((len(p), 0), np.float32), np.zeros((len(p), 0), np.intp)
        sims = self._scores(p)
        if k < n:
            idx = np.argpartition(sims, n - k, axis=1)[:, n - k :]
        else:
            idx = np.broadcast_to(np.arange(n), (len(p), n)).copy()
        top = np.take_along_axis(sims, idx, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        idx = np.take_along_axis(idx, order, axis=1)
        return np.take_along_axis(top, order, axis=1).astype(np.float32), idx.astype(np.intp)

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
        self._emb = np.zeros((0, self.dim), dtype=self.dtype)
        self.refs = []
