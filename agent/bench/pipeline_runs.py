"""Runs of ``FacePipeline`` over a scene: sustained throughput and time to a match decision.

Throughput: the whole clip is decoded into memory first (a camera hands over
decoded frames; a replay would otherwise have to decode JPEGs, and in the
two-stage mode the embedding thread would keep working, untimed, while the
next JPEG is decoded). Then every frame is fed as fast as the pipeline takes
it and the wall clock runs from the first ``process`` call until ``flush``
has returned the decisions of the last embeddings in flight, so fps is what
the pipeline really sustains in both modes. Decision latency: the clip is
replayed in real time at its frame rate, dropping frames the pipeline is too
slow for, exactly as a live camera would. For each person's first alert it
records the time from the capture of the deciding frame, and from the moments
the frames in which the person first appears and is first fully visible
(ground truth) were due, until the MatchCandidate exists.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.bench.evidence_load import EvidenceLoad
from agent.bench.figures import summarise_ms
from agent.bench.naive_pipeline import read_frame
from agent.camera.frame_source import BgrImage, Frame
from agent.camera.replay_source import ReplaySource
from agent.config import AgentConfig
from agent.errors import UsageError
from agent.matching.gallery import Gallery
from agent.vision.face_pipeline import FacePipeline, MatchCandidate
from agent.vision.model_store import PinnedModel
from agent.vision.stage_timings import STAGES


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
    size = pipeline.embedder.input_size
    pipeline.embedder.embed([np.zeros((size, size, 3), np.uint8)])
    return pipeline


def load_clip(frames_dir: Path) -> list[BgrImage]:
    """Every frame of a replay folder, decoded (the clip is short: 180 frames are 500 MB)."""
    files = sorted(frames_dir.glob("[0-9]*.jpg"))
    if not files:
        raise UsageError(f"bench: {frames_dir} holds no numbered .jpg frames")
    return [read_frame(path) for path in files]


def run_sustained(
    cfg: AgentConfig,
    models: dict[str, PinnedModel],
    threads: int,
    gallery: Gallery,
    threshold: float,
    images: Sequence[BgrImage],
    *,
    evidence: EvidenceLoad | None = None,
    scene_fps: float | None = None,
) -> dict[str, Any]:
    """Frames per second over the whole clip (wall clock, embeddings drained), stage timings.

    ``scene_fps`` stamps frame *i* at ``start + i / scene_fps`` (the scene's own time, as a
    camera would) instead of when it is handed over; ``evidence`` gets every frame and
    every match, as the daemon's clip maker does, and works beside the pipeline."""
    pipeline = _pipeline(cfg, models, threads, gallery, threshold)
    refs: set[str] = set()
    per_frame = []
    t_start = time.perf_counter()
    mono0 = time.monotonic()
    for i, image in enumerate(images):
        t0 = time.perf_counter()
        stamp = mono0 + i / scene_fps if scene_fps else time.monotonic()
        frame = Frame(i + 1, stamp, image)
        if evidence is not None:
            evidence.offer(frame)
        found = pipeline.process(frame)
        per_frame.append(time.perf_counter() - t0)
        refs.update(c.ref for c in found)
        if evidence is not None:
            for c in found:
                evidence.alert(c.decision_t_mono)
    t_flush = time.perf_counter()
    refs.update(c.ref for c in pipeline.flush())
    t_end = time.perf_counter()
    wall = t_end - t_start
    stages = {s: summarise_ms(pipeline.timings.samples(s)) for s in STAGES}
    embeddings = pipeline.counters.embeddings
    if embeddings:
        stages["embed"]["per_face_ms"] = round(
            pipeline.timings.totals["embed"] / embeddings * 1000, 3
        )
    result = {
        "threads": pipeline.threads,
        "two_stage": pipeline.two_stage,
        "frames": len(images),
        "seconds": round(wall, 3),
        "fps": round(len(images) / wall, 2) if wall > 0 else float("nan"),
        # Caller-side time per frame; in the two-stage mode embedding runs beside it.
        "process_ms": summarise_ms(per_frame),
        "flush_ms": round((t_end - t_flush) * 1000, 3),
        "stages": stages,
        "counters": pipeline.counters.as_dict(),
        "matched": sorted(refs),
    }
    pipeline.close()
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

    def note(found: list[MatchCandidate]) -> None:
        for c in found:
            if c.ref not in truth.identities:
                wrong.add(c.ref)
            elif c.ref not in first_decision:
                first_decision[c.ref] = (c.decision_t_mono, c.frame_t_mono)

    source.open()
    t_open = time.monotonic()  # the replay's clock starts at the end of open()
    try:
        while True:
            frame = source.read()
            if frame is None:
                break
            note(pipeline.process(frame))
        note(pipeline.flush())  # embeddings still in flight when the clip ended (two-stage)
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
    pipeline.close()
    return {
        "people": len(present),
        "matched": len(from_entry),
        "wrong_alerts": len(wrong),
        "frames_dropped": source.skipped,
        "from_visible_s": from_visible,
        "from_entry_s": from_entry,
        "from_capture_s": from_capture,
    }
