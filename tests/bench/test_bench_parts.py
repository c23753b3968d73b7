"""Bench building blocks with tiny sizes (figures are printed by the bench, never asserted)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from agent.bench.figures import summarise_ms
from agent.bench.gallery_scaling import random_unit_rows, time_gallery_search
from agent.bench.memory_probe import measure_in_child
from agent.bench.naive_pipeline import NaivePipeline, OpenCvFaceReference
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
    fig = measure_in_child(models_dir, tmp_path, gallery_size=2000, frames=1)
    assert fig["frames"] == 1 and fig["gallery"] == 2000
    assert fig["rss_mb_peak"] >= fig["rss_mb_after_models"] > 0
    assert fig["gallery_mb"] == round(2000 * 128 * 4 / 2**20, 1)
