"""Runs of ``FacePipeline`` over a scene: sustained throughput and time to a match decision.

Throughput: every frame of the clip is fed as fast as the pipeline takes it;
only ``process`` is timed (a camera hands over decoded frames, a replay has to
decode JPEGs first). Decision latency: the clip is replayed in real time at
its frame rate, dropping frames the pipeline is too slow for, exactly as a
live camera would. For each person's first alert it records the time from the
capture of the deciding frame, and from the moments the frames in which the
person first appears and is first fully visible (ground truth) were due, until
the MatchCandidate exists.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.bench.figures import summarise_ms
from agent.bench.naive_pipeline import read_frame
from agent.camera.frame_source import Frame
from agent.camera.replay_source import ReplaySource
from agent.config import AgentConfig
from agent.matching.gallery import Gallery
from agent.vision.face_pipeline import STAGES, FacePipeline
from agent.vision.model_store import PinnedModel


def _pipeline(
    cfg: AgentConfig,
    models: dict[str, PinnedModel],
    threads: int,
    gallery: Gallery,
    threshold: float,
) -> FacePipeline:
    pipeline = FacePipeline(cfg, models, threads=threads)
    pipeline.set_watchlist(gallery, threshold, pipeline.model_id)
    # First runs of an onnxruntime session allocate and pick kernels: not part of the figures.
    pipeline.detector.detect(np.zeros((720, 1280, 3), np.uint8))
    pipeline.embedder.embed([np.zeros((112, 112, 3), np.uint8)])
    return pipeline


def run_sustained(
    cfg: AgentConfig,
    models: dict[str, PinnedModel],
    threads: int,
    gallery: Gallery,
    threshold: float,
    frames_dir: Path,
) -> dict[str, Any]:
    """Frames per second over the whole clip, the stage timings and what was matched."""
    pipeline = _pipeline(cfg, models, threads, gallery, threshold)
    files = sorted(frames_dir.glob("[0-9]*.jpg"))
    busy = 0.0
    refs: set[str] = set()
    per_frame = []
    for i, path in enumerate(files):
        image = read_frame(path)
        t0 = time.perf_counter()
        found = pipeline.process(Frame(i + 1, time.monotonic(), image))
        dt = time.perf_counter() - t0
        busy += dt
        per_frame.append(dt)
        refs.update(c.ref for c in found)
    stages = {s: summarise_ms(pipeline.timings.samples(s)) for s in STAGES}
    embeddings = pipeline.counters.embeddings
    if embeddings:
        stages["embed"]["per_face_ms"] = round(
            pipeline.timings.totals["embed"] / embeddings * 1000, 3
        )
    result = {
        "threads": pipeline.threads,
        "frames": len(files),
        "seconds": round(busy, 3),
        "fps": round(len(files) / busy, 2) if busy > 0 else float("nan"),
        "frame_ms": summarise_ms(per_frame),
        "stages": stages,
        "counters": pipeline.counters.as_dict(),
        "matched": sorted(refs),
    }
    pipeline.reset()
    return result


def run_latency(
    cfg: AgentConfig,
    models: dict[str, PinnedModel],
    threads: int,
    gallery: Gallery,
    threshold: float,
    truth: Any,
) -> dict[str, Any]:
    """Real-time replay of one scene; latency samples (seconds) per matched person."""
    pipeline = _pipeline(cfg, models, threads, gallery, threshold)
    source = ReplaySource(truth.frames_dir, fps=truth.fps, realtime=True, skip_late_frames=True)
    present = {k: v for k, v in truth.identities.items() if v.first_frame is not None}
    first_decision: dict[str, tuple[float, float]] = {}  # ref -> (decision t, its frame's t)
    wrong: set[str] = set()
    source.open()
    t_open = time.monotonic()  # the replay's clock starts at the end of open()
    try:
        while True:
            frame = source.read()
            if frame is None:
                break
            for c in pipeline.process(frame):
                if c.ref not in truth.identities:
                    wrong.add(c.ref)
                elif c.ref not in first_decision:
                    first_decision[c.ref] = (c.decision_t_mono, c.frame_t_mono)
    finally:
        source.close()
    from_visible, from_entry, from_capture = [], [], []
    for ref, (t_decision, t_frame) in first_decision.items():
        ident = present.get(ref)
        if ident is None:
            continue
        if ident.first_full_frame is not None:  # some people are never seen whole
            from_visible.append(t_decision - (t_open + ident.first_full_frame / truth.fps))
        from_entry.append(t_decision - (t_open + ident.first_frame / truth.fps))
        from_capture.append(t_decision - t_frame)
    pipeline.reset()
    return {
        "people": len(present),
        "matched": len(from_entry),
        "wrong_alerts": len(wrong),
        "frames_dropped": source.skipped,
        "from_visible_s": from_visible,
        "from_entry_s": from_entry,
        "from_capture_s": from_capture,
    }
