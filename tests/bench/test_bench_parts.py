"""Bench building blocks with tiny sizes (figures are printed by the bench, never asserted)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.bench.figures import summarise_ms
from agent.bench.gallery_scaling import random_unit_rows, time_gallery_search
from agent.bench.memory_probe import measure_in_child
from agent.bench.naive_pipeline import NaivePipeline, OpenCvFaceReference, run_naive
from agent.bench.pipeline_runs import load_clip, run_sustained
from agent.config import AgentConfig, DeviceSection
from agent.errors import UsageError
from agent.matching.gallery import Gallery
from agent.vision.model_store import resolve_models
from agent.vision.still_photo import StillPhotoAnalyser


def test_summaries_and_random_galleries() -> None:
    s = summarise_ms([0.001, 0.002, 0.003, 0.004])
    assert s["count"] == 4 and s["p50_ms"] == 2.5 and 3.5 < s["p95_ms"] <= 4.0
    rows = random_unit_rows(50, 128, 0)
    assert rows.shape == (50, 128) and np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
    fig = time_gallery_search((10, 100), repeats=3)
    assert set(fig) == {10, 100} and all(f["count"] == 3 for f in fig.values())
    # S-norm is timed beside cosine where the gallery is large enough to normalise against.
    assert fig[100]["snorm_count"] == 3 and fig[100]["snorm_prepare_ms"] >= 0
    assert fig[10]["snorm_count"] == 0 and np.isnan(fig[10]["snorm_p50_ms"])


def test_opencv_reference_agrees_with_the_product_path(shared_data: Path, models_dir: Path) -> None:
    """Same model files, independent decoding and alignment: embeddings must nearly coincide."""
    models = resolve_models(models_dir)
    ref = OpenCvFaceReference(models)
    product = StillPhotoAnalyser(models)
    sims = []
    for photo in sorted((shared_data / "faces").glob("deepface_id0[1-3]/[12].jpg")):
        image = cv2.imread(str(photo))
        assert image is not None
        a, b = ref.embed_central(image), product.embed_central(image)
        assert a is not None and b is not None, photo
        sims.append(float(a @ b))
    assert min(sims) > 0.9, sims


def test_naive_pipeline_embeds_every_face_of_every_frame(
    shared_data: Path, models_dir: Path
) -> None:
    models = resolve_models(models_dir)
    photo = cv2.imread(str(shared_data / "faces/deepface_id01/1.jpg"))
    assert photo is not None
    emb = StillPhotoAnalyser(models).embed_central(photo)
    assert emb is not None
    gallery = Gallery(np.stack([emb, *random_unit_rows(5, 128, 1)]), ["me", *"abcde"])
    naive = NaivePipeline(models, gallery, threshold=0.5)
    frame = cv2.resize(photo, (640, round(640 * photo.shape[0] / photo.shape[1])))
    for _ in range(3):
        assert [r for r, _ in naive.process(frame)] == ["me"]
    assert naive.faces_embedded == 3
    blank = np.zeros((360, 640, 3), np.uint8)
    assert naive.process(blank) == [] and naive.faces_embedded == 3


def test_memory_probe_runs_in_a_child(tmp_path: Path, shared_data: Path, models_dir: Path) -> None:
    frame = cv2.imread(str(shared_data / "faces/deepface_id01/1.jpg"))
    assert frame is not None
    cv2.imwrite(str(tmp_path / "000001.jpg"), frame)
    fig = measure_in_child(models_dir, tmp_path, gallery_size=2000, frames=1, threads=2)
    assert fig["frames"] == 1 and fig["gallery"] == 2000 and fig["threads"] == 2
    assert fig["rss_mb_peak"] >= fig["rss_mb_after_models"] > 0
    assert fig["gallery_mb"] == round(2000 * 128 * 4 / 2**20, 1)


def _write_clip(folder: Path, shared_data: Path, frames: int) -> None:
    """Two photos of watchlist people side by side on a 1280x720 canvas, held still."""
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    for k, ident in enumerate(("deepface_id01", "deepface_id02")):
        photo = cv2.imread(str(shared_data / f"faces/{ident}/2.jpg"))
        assert photo is not None
        photo = cv2.resize(photo, (560, round(560 * photo.shape[0] / photo.shape[1])))[:700]
        canvas[10 : 10 + photo.shape[0], 40 + k * 640 : 40 + k * 640 + 560] = photo
    folder.mkdir()
    for i in range(frames):
        cv2.imwrite(str(folder / f"{i + 1:06d}.jpg"), canvas)


def test_sustained_run_drains_every_embedding_and_naive_sees_the_same_frames(
    tmp_path: Path, shared_data: Path, models_dir: Path
) -> None:
    models = resolve_models(models_dir)
    product = StillPhotoAnalyser(models)
    embs = []
    for ident in ("deepface_id01", "deepface_id02"):
        emb = product.embed_central(cv2.imread(str(shared_data / f"faces/{ident}/1.jpg")))
        assert emb is not None
        embs.append(emb)
    gallery = Gallery(np.stack(embs), ["id01", "id02"])
    _write_clip(tmp_path / "clip", shared_data, 12)
    images = load_clip(tmp_path / "clip")
    assert len(images) == 12 and images[0].shape == (720, 1280, 3)
    cfg = AgentConfig(device=DeviceSection(id="bench-test"))
    run = run_sustained(cfg, models, 2, gallery, 0.4, images)
    assert run["two_stage"] and run["frames"] == 12
    c = run["counters"]
    # Every face handed to the embedding thread was compared before the clock stopped.
    assert c["embeddings"] >= 2 and c["faces_compared"] == c["embeddings"]
    assert run["stages"]["embed"]["count"] >= 1 and run["matched"] == ["id01", "id02"]
    naive = NaivePipeline(models, gallery, 0.4)
    fig = run_naive(naive, images, 1)
    assert fig["frames"] == 12 and fig["faces_embedded"] == 24


def test_a_clip_without_frames_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="holds no numbered .jpg frames"):
        load_clip(tmp_path)
