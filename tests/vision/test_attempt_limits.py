"""Embedding attempts per track: at most max_attempts_per_track, then attempts_after_match.

Real detector, tracker, quality gate and embedder on a synthetic scene. The two people
walk one after the other, so every embedding of a frame belongs to the one live track.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_scene_helpers import Walker, background, face_patch, render

from agent.camera.frame_source import Frame
from agent.config import AgentConfig, DeviceSection, MatchingSection
from agent.matching.gallery import Gallery
from agent.vision.face_pipeline import FacePipeline
from agent.vision.model_store import PinnedModel, resolve_models
from agent.vision.still_photo import StillPhotoAnalyser

TARGET, STRANGER = "deepface_id01", "deepface_id10"
K, AFTER = 3, 2


@pytest.fixture(scope="module")
def models(models_dir: Path) -> dict[str, PinnedModel]:
    return resolve_models(models_dir)


@pytest.fixture(scope="module")
def scene(models: dict[str, PinnedModel], shared_data: Path) -> tuple[Gallery, list[Frame]]:
    analyser = StillPhotoAnalyser(models)
    faces = shared_data / "faces"
    embs = []
    for ident in (TARGET, "deepface_id02", "deepface_id03"):
        emb = analyser.embed_central(cv2.imread(str(faces / ident / "1.jpg")))
        assert emb is not None
        embs.append(emb)
    gallery = Gallery(np.stack(embs), [TARGET, "deepface_id02", "deepface_id03"])
    walkers = [
        Walker(face_patch(analyser, faces / TARGET / "2.jpg"), (50, 200), (900, 260), 0, 44),
        # Enters far from where the first left, after that track has ended: a new track.
        Walker(face_patch(analyser, faces / STRANGER / "2.jpg"), (50, 150), (900, 100), 60, 99),
    ]
    return gallery, render(background(shared_data), walkers, 100)


def _config(after: int) -> AgentConfig:
    matching = dataclasses.replace(
        MatchingSection(),
        max_attempts_per_track=K,
        attempts_after_match=after,
        attempt_interval_frames=2,  # a shot every other frame is worth trying: limits bite
    )
    return AgentConfig(device=DeviceSection(id="test-dev"), matching=matching)


def _run(
    pipe: FacePipeline, frames: list[Frame]
) -> tuple[dict[str, int], dict[str, int], int | None]:
    """Embeddings per person before (up to and including the deciding frame) and after a match."""
    before = {TARGET: 0, STRANGER: 0}
    after = {TARGET: 0, STRANGER: 0}
    alert_seq: int | None = None
    for frame in frames:
        n0 = pipe.counters.embeddings
        found = pipe.process(frame)
        who = TARGET if frame.seq <= 55 else STRANGER
        made = pipe.counters.embeddings - n0
        (after if alert_seq is not None and who == TARGET else before)[who] += made
        if found:
            assert [c.ref for c in found] == [TARGET] and alert_seq is None
            alert_seq = found[0].frame_seq
    pipe.flush()
    return before, after, alert_seq


@pytest.mark.parametrize("after_match", [AFTER, 0])
def test_single_thread_counts_per_track(
    models: dict[str, PinnedModel], scene: tuple[Gallery, list[Frame]], after_match: int
) -> None:
    gallery, frames = scene
    pipe = FacePipeline(_config(after_match), models, threads=1)
    pipe.set_watchlist(gallery, 0.5)
    before, after, alert_seq = _run(pipe, frames)
    assert alert_seq is not None and pipe.counters.matches == 1
    # The watchlisted person is decided within K attempts, then gets exactly the extra ones.
    assert 1 <= before[TARGET] <= K
    assert after[TARGET] == after_match
    # The stranger never matches: the track spends all K attempts and no more.
    assert before[STRANGER] == K and after[STRANGER] == 0
    assert pipe.counters.tracks_started == 2
    assert pipe.counters.embeddings == before[TARGET] + after[TARGET] + K


def test_two_stage_mode_keeps_the_same_limits(
    models: dict[str, PinnedModel], scene: tuple[Gallery, list[Frame]]
) -> None:
    gallery, frames = scene
    pipe = FacePipeline(_config(AFTER), models, threads=2)
    try:
        pipe.set_watchlist(gallery, 0.5)
        before, after, alert_seq = _run(pipe, frames)
    finally:
        pipe.close()
    assert alert_seq is not None and pipe.counters.matches == 1
    # Decisions arrive a frame or two late here, so the split may shift; the totals may not.
    assert 1 <= before[TARGET] + after[TARGET] <= K + AFTER
    assert before[STRANGER] == K and after[STRANGER] == 0
    assert pipe.counters.faces_compared == pipe.counters.embeddings
