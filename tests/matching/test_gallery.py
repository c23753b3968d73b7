"""Gallery: top-k cosine search in float32 and float16, validation, and wiping."""

from __future__ import annotations

import numpy as np
import pytest

from agent.errors import UsageError
from agent.matching.gallery import Gallery


def random_unit(n: int, d: int = 128, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_search_returns_the_true_top_k(dtype: type) -> None:
    emb = random_unit(70_000)  # more than one float16 block
    g = Gallery(emb.astype(dtype), [f"e{i}" for i in range(len(emb))])
    probes = emb[[5, 69_999]] + 0.05 * random_unit(2, seed=1)
    scores, idx = g.search(probes, top_k=3)
    assert scores.shape == idx.shape == (2, 3)
    assert idx[0, 0] == 5 and idx[1, 0] == 69_999
    brute = (probes / np.linalg.norm(probes, axis=1, keepdims=True)) @ emb.T
    want = np.sort(brute, axis=1)[:, ::-1][:, :3]
    np.testing.assert_allclose(scores, want, atol=2e-3 if dtype is np.float16 else 1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    assert len(g) == 70_000 and g.refs[idx[0, 0]] == "e5"


def test_top_k_larger_than_gallery_and_single_probe() -> None:
    g = Gallery(random_unit(2), ["a", "b"])
    scores, idx = g.search(random_unit(1)[0], top_k=5)
    assert scores.shape == (1, 2) and sorted(idx[0].tolist()) == [0, 1]


def test_rows_are_normalised() -> None:
    g = Gallery(np.array([[3.0, 4.0]], np.float32), ["a"])
    scores, _ = g.search(np.array([[3.0, 4.0]], np.float32), 1)
    assert scores[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("emb", "refs", "msg"),
    [
        (np.zeros((2, 4), np.float32), ["a", "b"], "all zeros"),
        (np.ones((2, 4), np.float32), ["a"], "2 embeddings but 1 refs"),
        (np.ones((4,), np.float32), ["a"], "N×D"),
        (np.ones((1, 4), np.int32), ["a"], "float16 or float32"),
        (np.array([[np.nan, 1.0]], np.float32), ["a"], "NaN"),
    ],
)
def test_bad_galleries_are_refused(emb: np.ndarray, refs: list[str], msg: str) -> None:
    with pytest.raises(UsageError, match=msg):
        Gallery(emb, refs)


def test_bad_probe_shape_is_refused() -> None:
    with pytest.raises(UsageError, match="M×128"):
        Gallery(random_unit(3), ["a", "b", "c"]).search(np.ones((1, 64), np.float32), 1)


def test_clear_overwrites_memory() -> None:
    emb = random_unit(10)
    g = Gallery(emb, [str(i) for i in range(10)])
    held = g._emb  # the matrix the gallery owns (a copy, never the caller's array)
    g.clear()
    assert len(g) == 0 and not held.any()
    assert emb.any()  # the caller's array is not the gallery's
    scores, _ = g.search(random_unit(1), 3)
    assert scores.shape == (1, 0)
