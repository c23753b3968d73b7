"""YuNet decoding agrees with OpenCV's own FaceDetectorYN; scaling and ROI map back correctly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import QualitySection
from agent.vision.face_align import align_face
from agent.vision.face_detector import Detection, FaceDetector, iou
from agent.vision.face_quality import assess_face
from agent.vision.model_store import PinnedModel, resolve_models


@pytest.fixture(scope="module")
def detector_model(models_dir: Path) -> PinnedModel:
    return resolve_models(models_dir)["detector"]


def _photos(shared_data: Path) -> list[Path]:
    crowd = sorted((shared_data / "scenes" / "many_faces").glob("*.jp*g"))[:6]
    return crowd + sorted((shared_data / "faces").glob("*/1.jpg"))[:4]


def _fit(image: np.ndarray, long_side: int = 960) -> np.ndarray:
    s = long_side / max(image.shape[:2])
    return image if s >= 1 else cv2.resize(image, None, fx=s, fy=s)


def test_decoding_matches_opencv_face_detector_yn(
    detector_model: PinnedModel, shared_data: Path
) -> None:
    ours = FaceDetector(detector_model, score_threshold=0.6, nms_threshold=0.3)
    ref = cv2.FaceDetectorYN.create(str(detector_model.path), "", (320, 320), 0.6, 0.3, 5000)
    total = 0
    for path in _photos(shared_data):
        img = _fit(cv2.imread(str(path)))
        ref.setInputSize((img.shape[1], img.shape[0]))
        _, expected = ref.detect(img)
        expected = np.zeros((0, 15), np.float32) if expected is None else expected
        expected = expected[np.argsort(-expected[:, 14])]
        got = ours.detect_native(img)
        assert len(got) == len(expected), path.name
        for e, d in zip(expected, got, strict=True):
            np.testing.assert_allclose(d.box, e[:4], atol=0.05)
            np.testing.assert_allclose(d.landmarks.reshape(-1), e[4:14], atol=0.05)
            assert abs(d.score - e[14]) < 1e-4
        total += len(got)
    assert total >= 20  # the crowd photos hold many faces


def test_downscaled_detection_maps_back_to_frame_pixels(
    detector_model: PinnedModel, shared_data: Path
) -> None:
    img = _fit(
        cv2.imread(
            str(shared_data / "scenes" / "many_faces" / "Ultra-Light-Fast-Generic__imgs_1.jpg")
        ),
        1280,
    )
    full = FaceDetector(detector_model, input_long_side=1280).detect(img)
    small = FaceDetector(detector_model, input_long_side=640).detect(img)
    assert len(small) >= 3
    # Every face found on the half-size copy is a face of the full-size run, in full-size pixels.
    for d in small:
        best = max(full, key=lambda f: iou(f.box, d.box))
        assert iou(best.box, d.box) > 0.6
        eye = np.linalg.norm(best.landmarks[0] - best.landmarks[1])
        assert np.abs(best.landmarks - d.landmarks).max() < 0.5 * eye + 2  # tiny faces are noisy


def test_roi_limits_the_search_and_keeps_frame_coordinates(
    detector_model: PinnedModel, shared_data: Path
) -> None:
    face = cv2.imread(str(shared_data / "faces" / "deepface_id03" / "1.jpg"))
    face = cv2.resize(face, (240, int(240 * face.shape[0] / face.shape[1])))
    frame = np.full((720, 1280, 3), 90, np.uint8)
    fh, fw = face.shape[:2]
    frame[100 : 100 + fh, 900 : 900 + fw] = face
    whole = FaceDetector(detector_model).detect(frame)
    assert len(whole) == 1 and whole[0].x > 900
    right = FaceDetector(detector_model, roi=(0.5, 0.0, 1.0, 1.0)).detect(frame)
    assert len(right) == 1 and iou(right[0].box, whole[0].box) > 0.8
    assert FaceDetector(detector_model, roi=(0.0, 0.0, 0.5, 1.0)).detect(frame) == []


def test_plain_scenes_give_no_face_worth_embedding(
    detector_model: PinnedModel, shared_data: Path
) -> None:
    # The detector alone fires on a few textures; the quality gate must turn all of them away.
    det = FaceDetector(detector_model)
    cfg = QualitySection()
    photos = sorted(
        p for p in (shared_data / "scenes" / "no_faces").iterdir() if p.suffix != ".tsv"
    )
    passed = []
    for p in photos:
        img = cv2.imread(str(p))
        for d in det.detect(img):
            if assess_face(d.landmarks, d.score, align_face(img, d.landmarks), cfg).passes:
                passed.append(p.name)
    assert len(photos) >= 30 and passed == []


def test_bad_roi_is_refused(detector_model: PinnedModel) -> None:
    with pytest.raises(ValueError, match="roi"):
        FaceDetector(detector_model, roi=(0.6, 0.0, 0.5, 1.0))


def test_detection_shift_and_scale() -> None:
    d = Detection(np.array([10, 20, 30, 40], np.float32), 0.9, np.ones((5, 2), np.float32))
    s = d.shifted(5, -5, scale=2.0)
    np.testing.assert_allclose(s.box, [25, 35, 60, 80])
    np.testing.assert_allclose(s.landmarks, np.full((5, 2), [7, -3]))
    assert s.centre == (55.0, 75.0)
