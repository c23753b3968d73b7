"""Time of one probe against galleries of random unit vectors of growing size, in each score
kind (cosine, and S-norm against the gallery), and the time S-norm's cohort statistics take
when a gallery is loaded.

Random unit vectors stand in for a watchlist: every entry is its own subject, so S-norm
does all its work (exact Z-norm statistics over N entries, a T-norm per probe)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from agent.bench.figures import summarise_ms
from agent.matching.gallery import Gallery
from agent.matching.score_normalisation import SNORM_MIN_COHORT

nan = float("nan")


def random_unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def time_gallery_search(
    sizes: Sequence[int],
    *,
    dim: int = 128,
    top_k: int = 3,
    dtype: type[np.floating] = np.float32,
    repeats: int = 50,
    seed: int = 0,
    scores: Sequence[str] = ("cosine", "snorm"),
) -> dict[int, dict[str, float]]:
    """Per gallery size: median/p95 milliseconds of ``Gallery.rank`` for one probe in each
    score kind (keys ``p50_ms``/``p95_ms`` for cosine, ``snorm_p50_ms``/``snorm_p95_ms``),
    and ``snorm_prepare_ms``, the S-norm statistics computed at load. Kinds alternate probe
    by probe, so a burst of load on the machine hits both alike."""
    out: dict[int, dict[str, float]] = {}
    probes = random_unit_rows(repeats + 3, dim, seed + 1)
    for n in sizes:
        gallery = Gallery(random_unit_rows(n, dim, seed).astype(dtype), [str(i) for i in range(n)])
        fig: dict[str, float] = {}
        kinds = [k for k in scores if k != "snorm" or gallery.smallest_cohort >= SNORM_MIN_COHORT]
        if "snorm" in scores and "snorm" not in kinds:  # too small a gallery to normalise
            fig.update(snorm_prepare_ms=nan, snorm_count=0, snorm_p50_ms=nan, snorm_p95_ms=nan)
        if "snorm" in kinds:
            t0 = time.perf_counter()
            gallery.prepare("snorm")
            fig["snorm_prepare_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        for p in probes[:3]:  # warm the caches and the allocator
            for kind in kinds:
                gallery.rank(p[None, :], top_k, kind)
        samples: dict[str, list[float]] = {kind: [] for kind in kinds}
        for p in probes[3:]:
            for kind in kinds:
                t0 = time.perf_counter()
                gallery.rank(p[None, :], top_k, kind)
                samples[kind].append(time.perf_counter() - t0)
        for kind in kinds:
            prefix = "" if kind == "cosine" else f"{kind}_"
            fig.update({f"{prefix}{k}": v for k, v in summarise_ms(samples[kind]).items()})
        out[n] = fig
        gallery.clear()
    return out


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def time_in_child(
    sizes: Sequence[int],
    *,
    top_k: int,
    repeats: int,
    seed: int,
    blas_threads: int | None,
    dim: int = 128,
) -> dict[int, dict[str, float]]:
    """``time_gallery_search`` in a fresh interpreter; ``blas_threads`` pins the BLAS pool.

    numpy's BLAS sizes its thread pool when it loads, so the only way to compare
    pool sizes is a process per setting. None keeps the environment as it is.
    """
    import json
    import os
    import subprocess
    import sys

    from agent.errors import LfrError

    env = dict(os.environ)
    if blas_threads is not None:
        env.update(dict.fromkeys(BLAS_THREAD_VARIABLES, str(blas_threads)))
    cmd = [
        sys.executable, "-m", "agent.bench.gallery_scaling",
        "--sizes", ",".join(map(str, sizes)),
        "--top-k", str(top_k), "--repeats", str(repeats), "--seed", str(seed),
        "--dim", str(dim),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise LfrError(f"bench: gallery timing failed (exit {proc.returncode}): {last}")
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    return {int(k): v for k, v in raw.items()}


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m agent.bench.gallery_scaling")
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dim", type=int, default=128, help="embedding size (the embedder's)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(json.dumps(time_gallery_search(sizes, dim=args.dim, top_k=args.top_k,
                                         repeats=args.repeats, seed=args.seed)))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
