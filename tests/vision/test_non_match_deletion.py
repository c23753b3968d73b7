"""The privacy promise: nothing of a face that does not match survives its comparison.

A non-matching crowd (scenes/many_faces) is replayed through the real pipeline
against a watchlist of other people, in cosine and in S-norm. Nothing may be written anywhere (audit hook
on every open-for-write, rename, mkdir, remove from this process, plus snapshots
of HOME, TMPDIR and the working folder), no log record at any level may carry a
score, an embedding or a crop, no candidate may come out, and once the tracks
have ended the pipeline holds no per-face data.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.camera.frame_source import Frame
from agent.camera.replay_source import ReplaySource
from agent.config import AgentConfig, DeviceSection, TrackerSection
from agent.matching.gallery import Gallery
from agent.vision.face_pipeline import FacePipeline
from agent.vision.model_store import resolve_models
from agent.vision.still_photo import StillPhotoAnalyser

_WRITE_EVENTS = {
    "os.rename",
    "os.replace",
    "os.mkdir",
    "os.remove",
    "os.unlink",
    "os.truncate",
    "shutil.copyfile",
    "shutil.move",
    "os.symlink",
    "os.link",
}
_recording: list[tuple[str, tuple[Any, ...]]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _recording is None:
        return
    if event == "open":
        _path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        )
        if writes:
            _recording.append((event, args))
    elif event in _WRITE_EVENTS:
        _recording.append((event, args))


sys.addaudithook(_audit)  # hooks cannot be removed; it records only while a test asks


def _snapshot(*roots: Path) -> set[Path]:
    return {p for r in roots for p in r.rglob("*")}


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    roots = [tmp_path / d for d in ("cwd", "home", "tmp")]
    for r in roots:
        r.mkdir()
    monkeypatch.chdir(roots[0])
    monkeypatch.setenv("HOME", str(roots[1]))
    monkeypatch.setenv("TMPDIR", str(roots[2]))
    yield roots


@pytest.mark.slow
@pytest.mark.parametrize(
    ("threads", "score"),
    [(1, "cosine"), (2, "cosine"), (2, "snorm")],
    ids=["single-thread", "two-stage", "two-stage-snorm"],
)
def test_non_matching_crowd_leaves_nothing(
    threads: int,
    score: str,
    models_dir: Path,
    shared_data: Path,
    sandbox: list[Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    global _recording
    models = resolve_models(models_dir)
    analyser = StillPhotoAnalyser(models)
    refs, embs = [], []
    for ident in sorted(p for p in (shared_data / "faces").iterdir() if p.is_dir()):
        emb = analyser.embed_central(cv2.imread(str(ident / "1.jpg")))
        assert emb is not None
        refs.append(ident.name)
        embs.append(emb)
    cfg = AgentConfig(
        device=DeviceSection(id="test-dev"), tracker=TrackerSection(max_missed_frames=1)
    )
    pipe = FacePipeline(cfg, models, threads=threads)
    if score == "snorm":
        # S-norm needs 50 other subjects per entry: 60 stand-in entries join the 13 people.
        fillers = np.random.default_rng(0).standard_normal((60, len(embs[0]))).astype(np.float32)
        embs += list(fillers / np.linalg.norm(fillers, axis=1, keepdims=True))
        refs += [f"filler-{i}" for i in range(60)]
    threshold = 0.6 if score == "cosine" else 6.0
    gallery = Gallery(np.stack(embs), refs)
    pipe.set_watchlist(gallery, threshold, models["embedder"].model_id, score=score)
    # deepface's own sample scenes show some of the watchlisted people (a true match), so
    # the crowd is every other many_faces photo.
    crowd = sandbox[0].parent / "crowd"
    crowd.mkdir()
    for photo in sorted((shared_data / "scenes" / "many_faces").iterdir()):
        if photo.suffix.lower() in {".jpg", ".jpeg", ".png"} and not photo.name.startswith(
            "deepface__"
        ):
            (crowd / photo.name).symlink_to(photo)
    source = ReplaySource(crowd, realtime=False)

    before = _snapshot(*sandbox)
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    _recording = []
    candidates = []
    try:
        source.open()
        while (frame := source.read()) is not None:
            candidates += pipe.process(frame)
        source.close()
        # Empty frames let every track run out naturally, as when people leave the view.
        blank = np.zeros((480, 640, 3), np.uint8)
        for i in range(3):
            candidates += pipe.process(Frame(10_000 + i, 1e6 + i, blank))
        candidates += pipe.flush()
        writes, _recording = _recording, None
    finally:
        _recording = None

    assert candidates == []
    assert writes == [], writes
    assert _snapshot(*sandbox) == before
    # The run did real work: faces were found, embedded and compared.
    assert pipe.counters.faces_detected > 100
    assert pipe.counters.faces_compared > 20
    assert pipe.counters.tracks_ended == pipe.counters.tracks_started
    # Nothing per face is left: no tracks, no fused shots, no matcher memory.
    assert pipe.live_tracks == 0 and pipe.per_track_state_count == 0
    assert not pipe._pending  # no embedding batch (aligned faces, frame) in flight
    assert pipe._matcher._alerted == {} and pipe._matcher._last_alert == {}
    # The only S-norm figures held are about watchlist entries, and they go with the gallery.
    gallery.clear()
    assert gallery._cohort is None
    # No log record carries a score, an embedding or pixel data.
    number = re.compile(r"\d\.\d{2,}")
    for rec in caplog.records:
        text = rec.getMessage()
        assert not number.search(text), text
        assert not re.search(r"score|embedding|crop", text, re.I), text
        assert not any(isinstance(a, np.ndarray) for a in (rec.args or ())), text
    pipe.close()
