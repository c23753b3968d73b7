"""FacePipeline on synthetic scenes: one alert per track per person, cool-down, counters, purge."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_scene_helpers import Walker, background, face_patch, render

from agent.config import AgentConfig, DeviceSection, MatchingSection
from agent.errors import CheckFailed, ModelError
from agent.matching.gallery import Gallery
from agent.vision.face_pipeline import FacePipeline
from agent.vision.model_store import PinnedModel, resolve_models
from agent.vision.stage_timings import STAGES
from agent.vision.still_photo import StillPhotoAnalyser


@pytest.fixture(scope="module")
def models(models_dir: Path) -> dict[str, PinnedModel]:
    return resolve_models(models_dir)


@pytest.fixture(scope="module")
def analyser(models: dict[str, PinnedModel]) -> StillPhotoAnalyser:
    return StillPhotoAnalyser(models)


@pytest.fixture(scope="module")
def identities(shared_data: Path) -> list[str]:
    return sorted(p.name for p in (shared_data / "faces").iterdir() if p.is_dir())


def make_gallery(
    analyser: StillPhotoAnalyser, shared_data: Path, ids: list[str], photo: str = "1.jpg"
) -> Gallery:
    embs = []
    for ident in ids:
        emb = analyser.embed_central(cv2.imread(str(shared_data / "faces" / ident / photo)))
        assert emb is not None
        embs.append(emb)
    return Gallery(np.stack(embs), ids)


def config(**matching: object) -> AgentConfig:
    return AgentConfig(
        device=DeviceSection(id="test-dev"),
        matching=dataclasses.replace(MatchingSection(), **matching),  # type: ignore[arg-type]
    )


def test_watchlisted_face_alerts_once_per_track_and_stranger_never(
    models: dict[str, PinnedModel],
    analyser: StillPhotoAnalyser,
    shared_data: Path,
    identities: list[str],
) -> None:
    gallery = make_gallery(analyser, shared_data, identities[:6])
    target, stranger = identities[0], identities[9]
    walkers = [
        Walker(
            face_patch(analyser, shared_data / "faces" / target / "2.jpg"),
            (50, 200),
            (900, 260),
            0,
            40,
        ),
        Walker(
            face_patch(analyser, shared_data / "faces" / stranger / "2.jpg"),
            (900, 100),
            (100, 150),
            5,
            45,
        ),
    ]
    frames = render(background(shared_data), walkers, 60)
    pipe = FacePipeline(config(), models, threads=1)
    pipe.set_watchlist(gallery, 0.5, models["embedder"].model_id)
    out = [c for f in frames for c in pipe.process(f)]

    assert [c.ref for c in out] == [target]
    c = out[0]
    assert c.score >= c.threshold == 0.5
    assert c.model_id == models["embedder"].model_id
    assert c.crop.ndim == 3 and c.crop.shape[0] > 100 and c.crop.dtype == np.uint8
    assert c.first_seen_t_mono <= c.frame_t_mono
    assert set(c.quality) == {"inter_eye_px", "sharpness", "yaw", "detector_score"}
    n = pipe.counters
    assert n.frames == 60 and n.matches == 1
    assert n.faces_detected >= 60  # two faces over ~40 frames each
    # Embedding is rationed: far fewer embeddings than detected faces.
    assert 2 <= n.embeddings <= 2 * config().matching.max_attempts_per_track
    assert n.faces_compared == n.embeddings
    assert n.tracks_ended == n.tracks_started  # both walked off before the end
    assert pipe.per_track_state_count == 0 and pipe.live_tracks == 0
    for stage in STAGES:
        assert pipe.timings.counts[stage] > 0


@pytest.mark.slow
def test_cooldown_across_tracks(
    models: dict[str, PinnedModel],
    analyser: StillPhotoAnalyser,
    shared_data: Path,
    identities: list[str],
) -> None:
    gallery = make_gallery(analyser, shared_data, identities[:3])
    patch = face_patch(analyser, shared_data / "faces" / identities[1] / "3.jpg")
    # The same person passes twice, with a gap long enough to end the first track.
    walkers = [
        Walker(patch, (50, 200), (600, 200), 0, 15),
        Walker(patch, (700, 300), (100, 300), 35, 50),
    ]
    frames = render(background(shared_data), walkers, 55)
    for cooldown, expected in ((3600.0, 1), (0.0, 2)):
        pipe = FacePipeline(config(cooldown_s=cooldown), models, threads=1)
        pipe.set_watchlist(gallery, 0.5)
        out = [c for f in frames for c in pipe.process(f)]
        assert [c.ref for c in out] == [identities[1]] * expected, cooldown
        assert pipe.counters.tracks_started >= 2


def test_no_watchlist_means_no_embedding(
    models: dict[str, PinnedModel],
    analyser: StillPhotoAnalyser,
    shared_data: Path,
    identities: list[str],
) -> None:
    walkers = [
        Walker(
            face_patch(analyser, shared_data / "faces" / identities[2] / "1.jpg"),
            (50, 50),
            (500, 50),
            0,
            9,
        )
    ]
    pipe = FacePipeline(config(), models, threads=1)
    out = [c for f in render(background(shared_data), walkers, 10) for c in pipe.process(f)]
    assert out == [] and pipe.counters.faces_detected >= 8 and pipe.counters.embeddings == 0


def test_set_watchlist_refuses_low_threshold_and_foreign_model(
    models: dict[str, PinnedModel],
    analyser: StillPhotoAnalyser,
    shared_data: Path,
    identities: list[str],
) -> None:
    pipe = FacePipeline(config(), models, threads=1)
    gallery = make_gallery(analyser, shared_data, identities[:2])
    with pytest.raises(CheckFailed, match="floor"):
        pipe.set_watchlist(gallery, 0.1)
    with pytest.raises(ModelError, match="built with model"):
        pipe.set_watchlist(gallery, 0.6, model_id="other@0123456789abcdef")
    with pytest.raises(ModelError, match="64-d"):
        pipe.set_watchlist(Gallery(np.ones((2, 64), np.float32), ["a", "b"]), 0.6)


def test_reset_purges_live_tracks(
    models: dict[str, PinnedModel],
    analyser: StillPhotoAnalyser,
    shared_data: Path,
    identities: list[str],
) -> None:
    gallery = make_gallery(analyser, shared_data, identities[:4])
    walkers = [
        Walker(
            face_patch(analyser, shared_data / "faces" / identities[10] / "1.jpg"),
            (50, 50),
            (400, 80),
            0,
            30,
        )
    ]
    pipe = FacePipeline(config(), models, threads=1)
    pipe.set_watchlist(gallery, 0.6)
    for f in render(background(shared_data), walkers, 8):
        assert pipe.process(f) == []
    assert pipe.live_tracks == 1 and pipe.per_track_state_count == 1
    pipe.reset()
    assert pipe.live_tracks == 0 and pipe.per_track_state_count == 0
    assert pipe.counters.frames == 0 and not pipe.has_watchlist


@pytest.mark.slow
def test_two_stage_mode_gives_the_same_decision_and_purges_after_flush(
    models: dict[str, PinnedModel],
    analyser: StillPhotoAnalyser,
    shared_data: Path,
    identities: list[str],
) -> None:
    gallery = make_gallery(analyser, shared_data, identities[:6])
    target, stranger = identities[0], identities[9]
    walkers = [
        Walker(
            face_patch(analyser, shared_data / "faces" / target / "2.jpg"),
            (50, 200),
            (900, 260),
            0,
            30,
        ),
        Walker(
            face_patch(analyser, shared_data / "faces" / stranger / "2.jpg"),
            (900, 100),
            (100, 150),
            0,
            30,
        ),
    ]
    # The clip ends while both faces are in view: the last embeddings may still be in flight.
    frames = render(background(shared_data), walkers, 25)
    pipe = FacePipeline(config(), models, threads=2)
    try:
        assert pipe.two_stage
        pipe.set_watchlist(gallery, 0.5)
        out = [c for f in frames for c in pipe.process(f)]
        out += pipe.end_tracks()
        assert [c.ref for c in out] == [target]
        assert out[0].frame_seq <= 25 and out[0].decision_t_mono >= out[0].frame_t_mono
        assert pipe.live_tracks == 0 and pipe.per_track_state_count == 0
        assert pipe.counters.tracks_ended == pipe.counters.tracks_started
        assert pipe.timings.counts["embed"] >= 1
    finally:
        pipe.close()


def test_snorm_watchlist_alerts_the_watched_face_with_its_snorm_score(
    models: dict[str, PinnedModel],
    analyser: StillPhotoAnalyser,
    shared_data: Path,
    identities: list[str],
) -> None:
    """S-norm needs a watchlist of at least 50 other subjects: the six photo identities are
    joined by 60 stand-in entries (random unit vectors, never matched)."""
    real = make_gallery(analyser, shared_data, identities[:6])
    fillers = np.random.default_rng(4).standard_normal((60, real.dim)).astype(np.float32)
    embeddings = np.concatenate([real._emb.astype(np.float32), fillers])
    gallery = Gallery(embeddings, [*real.refs, *(f"filler{i}" for i in range(60))])
    target, stranger = identities[0], identities[9]
    walkers = [
        Walker(face_patch(analyser, shared_data / "faces" / target / "2.jpg"),
               (50, 200), (900, 260), 0, 40),
        Walker(face_patch(analyser, shared_data / "faces" / stranger / "2.jpg"),
               (900, 100), (100, 150), 5, 45),
    ]  # fmt: skip
    frames = render(background(shared_data), walkers, 60)
    pipe = FacePipeline(config(), models, threads=1)
    pipe.set_watchlist(gallery, 4.0, models["embedder"].model_id, score="snorm")
    out = [c for f in frames for c in pipe.process(f)]
    assert [c.ref for c in out] == [target]
    assert out[0].score >= out[0].threshold == 4.0  # an S-norm score, far above a cosine
    # The same score the evaluation and the hub's calibration compute for that face.
    assert pipe.score_kind == "snorm"
    pipe.reset()
    assert pipe.score_kind == "cosine" and not pipe.has_watchlist


def test_snorm_is_refused_for_a_watchlist_too_small_to_normalise_against(
    models: dict[str, PinnedModel],
    analyser: StillPhotoAnalyser,
    shared_data: Path,
    identities: list[str],
) -> None:
    pipe = FacePipeline(config(), models, threads=1)
    gallery = make_gallery(analyser, shared_data, identities[:6])
    with pytest.raises(CheckFailed, match="S-norm needs every watchlist entry"):
        pipe.set_watchlist(gallery, 4.0, score="snorm")
    assert not pipe.has_watchlist
    # The floor does not bind an S-norm threshold (it is not a cosine) but stays under alerts.
    big = Gallery(np.random.default_rng(1).standard_normal((80, 128)).astype(np.float32),
                  [f"e{i}" for i in range(80)])  # fmt: skip
    pipe.set_watchlist(big, 0.1, score="snorm")
    assert pipe._matcher.cosine_floor == config().matching.threshold_floor
