"""SFace embeddings agree with OpenCV's FaceRecognizerSF, are unit length and batch-independent."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.vision.face_align import align_face
from agent.vision.face_detector import FaceDetector
from agent.vision.face_embedder import FaceEmbedder
from agent.vision.model_store import PinnedModel, resolve_models


@pytest.fixture(scope="module")
def models(models_dir: Path) -> dict[str, PinnedModel]:
    return resolve_models(models_dir)


def test_embeddings_match_opencv_face_recognizer_sf(
    models: dict[str, PinnedModel], shared_data: Path
) -> None:
    det = FaceDetector(models["detector"], input_long_side=4096)
    yn = cv2.FaceDetectorYN.create(str(models["detector"].path), "", (320, 320), 0.6, 0.3, 5000)
    sf = cv2.FaceRecognizerSF.create(str(models["embedder"].path), "")
    emb = FaceEmbedder(models["embedder"])
    for path in sorted((shared_data / "faces").glob("*/2.jpg"))[:5]:
        img = cv2.imread(str(path))
        s = 800 / max(img.shape[:2])
        img = cv2.resize(img, None, fx=s, fy=s) if s < 1 else img
        yn.setInputSize((img.shape[1], img.shape[0]))
        _, ref_faces = yn.detect(img)
        ref_face = ref_faces[np.argmax(ref_faces[:, 14])]
        ref = sf.feature(sf.alignCrop(img, ref_face)).reshape(-1)
        ref /= np.linalg.norm(ref)
        ours = emb.embed([align_face(img, det.detect_native(img)[0].landmarks)])[0]
        assert float(ours @ ref) > 0.9999, path


def test_batch_gives_the_same_rows_as_one_by_one(models: dict[str, PinnedModel]) -> None:
    rng = np.random.default_rng(1)
    faces = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(3)]
    emb = FaceEmbedder(models["embedder"])
    batch = emb.embed(faces)
    assert batch.shape == (3, 128) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    for f, row in zip(faces, batch, strict=True):
        np.testing.assert_allclose(emb.embed([f])[0], row, atol=1e-5)
    assert emb.embed([]).shape == (0, 128)


def test_flip_augmentation_is_mirror_invariant(models: dict[str, PinnedModel]) -> None:
    rng = np.random.default_rng(2)
    face = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    emb = FaceEmbedder(models["embedder"], flip=True)
    a, b = emb.embed([face, np.ascontiguousarray(face[:, ::-1])])
    np.testing.assert_allclose(a, b, atol=1e-5)
    plain = FaceEmbedder(models["embedder"]).embed([face])[0]
    assert float(plain @ a) < 0.99999  # flip really changes the vector


def test_wrong_face_size_is_refused(models: dict[str, PinnedModel]) -> None:
    with pytest.raises(ValueError, match="112"):
        FaceEmbedder(models["embedder"]).embed([np.zeros((100, 100, 3), np.uint8)])
