"""The still-photo API: every shared face photo gets a face; the central face is chosen; tight crops work."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.vision.model_store import resolve_models
from agent.vision.still_photo import StillPhotoAnalyser


@pytest.fixture(scope="module")
def analyser(models_dir: Path) -> StillPhotoAnalyser:
    return StillPhotoAnalyser(resolve_models(models_dir))


@pytest.mark.slow
def test_every_shared_face_photo_gives_a_unit_embedding(
    analyser: StillPhotoAnalyser, shared_data: Path
) -> None:
    photos = sorted((shared_data / "faces").glob("*/*.jpg"))
    assert len(photos) == 61
    embs = {}
    for p in photos:
        e = analyser.embed_central(cv2.imread(str(p)))
        assert e is not None, p
        assert e.shape == (128,) and e.dtype == np.float32
        assert abs(float(np.linalg.norm(e)) - 1) < 1e-5
        embs[p] = e
    # Same person scores higher than different people on average (a sanity check, not a tuning).
    same, diff = [], []
    keys = list(embs)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            (same if a.parent == b.parent else diff).append(float(embs[a] @ embs[b]))
    assert np.mean(same) > np.mean(diff) + 0.3


def test_tight_small_crop_is_found(analyser: StillPhotoAnalyser, shared_data: Path) -> None:
    img = cv2.imread(str(shared_data / "faces" / "deepface_id02" / "1.jpg"))
    det = analyser.central_face(img)
    assert det is not None
    # Crop exactly to the face box and shrink to ~100 px: the worst case for enrolment photos.
    x, y, w, h = (int(v) for v in det.box)
    crop = img[max(0, y) : y + h, max(0, x) : x + w]
    crop = cv2.resize(crop, (100, int(100 * crop.shape[0] / crop.shape[1])))
    found = analyser.detect(crop)
    assert found, "tight crop not found"
    full = analyser.embed(img, det)
    small = analyser.embed(crop, found[0])
    assert float(full @ small) > 0.5


def test_embed_central_picks_the_face_nearest_the_centre(
    analyser: StillPhotoAnalyser, shared_data: Path
) -> None:
    a = cv2.imread(str(shared_data / "faces" / "deepface_id03" / "1.jpg"))
    b = cv2.imread(str(shared_data / "faces" / "deepface_id07" / "1.jpg"))
    a, b = (cv2.resize(x, (300, int(300 * x.shape[0] / x.shape[1]))) for x in (a, b))
    canvas = np.full((700, 1200, 3), 128, np.uint8)
    canvas[200 : 200 + a.shape[0], 450 : 450 + a.shape[1]] = a[: 700 - 200]  # central
    canvas[0 : b.shape[0], 0:300] = b[:700]  # corner
    got = analyser.embed_central(canvas)
    ea = analyser.embed_central(a)
    eb = analyser.embed_central(b)
    assert got is not None and ea is not None and eb is not None
    assert float(got @ ea) > 0.9 > float(got @ eb)


def test_no_face_gives_none_and_bad_images_are_refused(analyser: StillPhotoAnalyser) -> None:
    assert analyser.embed_central(np.full((240, 320, 3), 90, np.uint8)) is None
    with pytest.raises(ValueError, match="H×W×3"):
        analyser.detect(np.zeros((100, 100), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        analyser.detect(np.zeros((100, 100, 3), np.float32))


def test_assess_reports_reasons(analyser: StillPhotoAnalyser, shared_data: Path) -> None:
    img = cv2.imread(str(shared_data / "faces" / "deepface_id01" / "1.jpg"))
    det = analyser.central_face(img)
    assert det is not None
    q = analyser.assess(img, det)
    assert q.passes and q.inter_eye_px > 18
    tiny = cv2.resize(img, None, fx=0.05, fy=0.05)
    tdet = analyser.central_face(tiny)
    if tdet is not None:
        tq = analyser.assess(tiny, tdet)
        assert not tq.passes and any("too small" in r for r in tq.reasons)
