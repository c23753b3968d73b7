"""Reference-photo quality control on real photos from the shared test material."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from agent.config import QualitySection
from agent.errors import UsageError
from agent.hub.watchlists.watchlist_enrolment import (
    ENROLMENT_QUALITY,
    EnrolmentChecker,
    ReferencePhoto,
    list_reference_photos,
)
from agent.vision.model_store import resolve_models

GOOD = "faces/deepface_id01/2.jpg"


@pytest.fixture(scope="module")
def checker(models_dir: Path) -> EnrolmentChecker:
    return EnrolmentChecker(resolve_models(models_dir))


def _check(checker: EnrolmentChecker, path: Path) -> tuple[str, ...]:
    return checker.check(ReferencePhoto("s1", "test", path)).reasons


def test_enrolment_thresholds_are_stricter_than_live() -> None:
    live = QualitySection()
    assert ENROLMENT_QUALITY.min_inter_eye_px > live.min_inter_eye_px
    assert ENROLMENT_QUALITY.min_sharpness > live.min_sharpness
    assert ENROLMENT_QUALITY.max_yaw < live.max_yaw
    assert ENROLMENT_QUALITY.min_detector_score > live.min_detector_score


def test_good_photo_is_accepted_with_a_unit_embedding(
    checker: EnrolmentChecker, shared_data: Path
) -> None:
    v = checker.check(ReferencePhoto("s1", "test", shared_data / GOOD))
    assert v.accepted and v.reasons == ()
    assert v.embedding is not None and v.embedding.shape == (128,)
    assert abs(float((v.embedding**2).sum()) - 1.0) < 1e-3


def test_no_face(checker: EnrolmentChecker, shared_data: Path) -> None:
    photo = shared_data / "scenes/no_faces/opencv-doc__data_building.jpg"
    assert _check(checker, photo) == ("no face found",)


def test_two_faces(checker: EnrolmentChecker, shared_data: Path) -> None:
    photo = shared_data / "scenes/many_faces/face_recognition__examples_two_people.jpg"
    (reason,) = _check(checker, photo)
    assert reason == "2 faces found, need exactly one"


def test_tiny_face(checker: EnrolmentChecker, shared_data: Path, tmp_path: Path) -> None:
    img = cv2.imread(str(shared_data / GOOD))
    small = cv2.resize(img, (100, 100 * img.shape[0] // img.shape[1]), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "tiny.png"), small)
    reasons = _check(checker, tmp_path / "tiny.png")
    assert reasons and reasons[0].startswith("face too small: inter-eye")


def test_blurred_face(checker: EnrolmentChecker, shared_data: Path, tmp_path: Path) -> None:
    img = cv2.imread(str(shared_data / GOOD))
    cv2.imwrite(str(tmp_path / "blur.png"), cv2.GaussianBlur(img, (0, 0), 25))
    reasons = _check(checker, tmp_path / "blur.png")
    assert any(r.startswith("face too blurred") for r in reasons)


def test_unreadable_image(checker: EnrolmentChecker, tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"not a jpeg")
    assert _check(checker, tmp_path / "x.jpg") == ("unreadable image",)


def test_listing_folders_and_csv(tmp_path: Path) -> None:
    for subject in ("alpha", "beta"):
        (tmp_path / "dir" / subject).mkdir(parents=True)
        (tmp_path / "dir" / subject / "1.jpg").write_bytes(b"x")
    (tmp_path / "dir" / "beta" / "notes.txt").write_text("ignored")
    (tmp_path / "dir" / "MANIFEST.tsv").write_text("ignored")
    csv = tmp_path / "list.csv"
    csv.write_text("subject,category,image\ngamma,wanted,dir/alpha/1.jpg\n")
    photos = list_reference_photos([tmp_path / "dir", csv])
    assert [(p.subject, p.category, p.path.name) for p in photos] == [
        ("alpha", "unspecified", "1.jpg"),
        ("beta", "unspecified", "1.jpg"),
        ("gamma", "wanted", "1.jpg"),
    ]
    assert photos[2].path == tmp_path / "dir/alpha/1.jpg"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "lists no photos"),
        ("a,b\n", "row 1: expected 3 non-empty columns"),
        ("a,,x.jpg\n", "row 1"),
    ],
)
def test_bad_csv_is_a_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    with pytest.raises(UsageError, match=message):
        list_reference_photos([csv])


def test_missing_input(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such folder or CSV file"):
        list_reference_photos([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no subject folders"):
        list_reference_photos([tmp_path / "empty"])


def test_blurred_face_filling_the_photo(
    checker: EnrolmentChecker, shared_data: Path, tmp_path: Path
) -> None:
    # The face reaches the photo's edges, so the aligned crop includes fill beyond them;
    # the face-region check still sees the blur.
    img = cv2.imread(str(shared_data / "faces/deepface_id10/1.jpg"))
    cv2.imwrite(str(tmp_path / "blur.png"), cv2.GaussianBlur(img, (0, 0), 48))
    reasons = _check(checker, tmp_path / "blur.png")
    assert any(r.startswith("face too blurred") for r in reasons), reasons
