"""Peak resident memory of the face pipeline with a gallery of N entries, in a child process.

A fresh interpreter loads the models, builds a random N-entry gallery, runs a
few frames of a replay through ``FacePipeline`` and reports its own peak RSS
(``VmHWM``), so nothing the parent allocated (other benchmarks, the scene
generator) is counted. The pipeline gets the thread count the daemon uses
(``models.threads``, 0: every core, hence the two-stage mode with its
embedding thread on a multi-core device). It measures the face pipeline and
its gallery only: the daemon's transport, outbox and audit log come on top.

    python -m agent.bench.memory_probe --models-dir DIR --frames DIR --gallery 10000 --threads 0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.errors import LfrError


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _probe(
    models_dir: Path, frames_dir: Path, gallery_size: int, frames: int, threads: int
) -> dict[str, float]:
    import time

    from agent.bench.gallery_scaling import random_unit_rows
    from agent.bench.naive_pipeline import read_frame
    from agent.camera.frame_source import Frame
    from agent.config import AgentConfig, DeviceSection
    from agent.matching.gallery import Gallery
    from agent.vision.face_pipeline import FacePipeline
    from agent.vision.model_store import resolve_models

    cfg = AgentConfig(device=DeviceSection(id="bench"))
    pipeline = FacePipeline(cfg, resolve_models(models_dir), threads=threads)
    baseline = peak_rss_mb()
    gallery = Gallery(
        random_unit_rows(gallery_size, pipeline.embedder.dim, 7),
        [f"entry-{i}" for i in range(gallery_size)],
    )
    pipeline.set_watchlist(gallery, max(0.5, cfg.matching.threshold_floor), pipeline.model_id)
    files = sorted(Path(frames_dir).glob("*.jpg"))[:frames]
    if not files:
        raise LfrError(f"bench: {frames_dir} holds no .jpg frames")
    for i, path in enumerate(files):
        pipeline.process(Frame(i + 1, time.monotonic(), read_frame(path)))
    pipeline.flush()
    pipeline.close()
    return {
        "threads": pipeline.threads,
        "gallery": gallery_size,
        "frames": len(files),
        "rss_mb_peak": round(peak_rss_mb(), 1),
        "rss_mb_after_models": round(baseline, 1),
        "gallery_mb": round(gallery.nbytes / 2**20, 1),
    }


def measure_in_child(
    models_dir: Path, frames_dir: Path, gallery_size: int, frames: int = 30, threads: int = 0
) -> dict[str, float]:
    """Run the probe in a fresh interpreter and return its figures (``threads`` 0: all cores)."""
    cmd = [
        sys.executable,
        "-m",
        "agent.bench.memory_probe",
        "--models-dir",
        str(models_dir),
        "--frames",
        str(frames_dir),
        "--gallery",
        str(gallery_size),
        "--count",
        str(frames),
        "--threads",
        str(threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise LfrError(f"bench: memory probe failed (exit {proc.returncode}): {last}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.bench.memory_probe")
    p.add_argument("--models-dir", type=Path, required=True)
    p.add_argument("--frames", type=Path, required=True)
    p.add_argument("--gallery", type=int, default=10000)
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--threads", type=int, default=0, help="model threads (0: all cores)")
    args = p.parse_args(argv)
    try:
        figures = _probe(args.models_dir, args.frames, args.gallery, args.count, args.threads)
    except LfrError as exc:
        print(f"memory_probe: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
