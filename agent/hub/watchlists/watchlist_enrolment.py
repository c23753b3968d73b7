"""Reference photos for a watchlist: where they come from and whether each is good enough.

Input is either a folder with one sub-folder per subject (the folder name is
the subject reference) or a CSV with columns ``subject,category,image``
(a header row with those names is optional; relative image paths are taken
from the CSV's folder). Several inputs may be combined.

Each photo must show exactly one face, and that face must pass the live
quality checks with stricter enrolment thresholds (``ENROLMENT_QUALITY``):
a poor reference photo degrades every comparison made against it for the
whole deployment, while a poor live shot only costs one attempt.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.config import QualitySection
from agent.errors import UsageError
from agent.vision.model_store import PinnedModel
from agent.vision.still_photo import StillPhotoAnalyser

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_CATEGORY = "unspecified"

#: Stricter than the live defaults (18 px, 20, 0.45, 0.7).
ENROLMENT_QUALITY = QualitySection(
    min_inter_eye_px=30.0, min_sharpness=40.0, max_yaw=0.30, min_detector_score=0.80
)


@dataclass(frozen=True)
class ReferencePhoto:
    subject: str
    category: str
    path: Path


@dataclass(frozen=True)
class PhotoVerdict:
    photo: ReferencePhoto
    embedding: npt.NDArray[np.float32] | None  # set only when accepted
    reasons: tuple[str, ...]  # empty when accepted

    @property
    def accepted(self) -> bool:
        return self.embedding is not None


def _folder_photos(root: Path) -> Iterator[ReferencePhoto]:
    subjects = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subjects:
        raise UsageError(f"watchlist: {root} has no subject folders (one folder per subject)")
    for sub in subjects:
        for f in sorted(sub.iterdir()):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                yield ReferencePhoto(sub.name, DEFAULT_CATEGORY, f)


def _csv_photos(path: Path) -> Iterator[ReferencePhoto]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"watchlist: cannot read {path} ({exc.__class__.__name__})") from exc
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0]][:3] == ["subject", "category", "image"]:
        rows = rows[1:]
    if not rows:
        raise UsageError(f"watchlist: {path} lists no photos")
    for n, row in enumerate(rows, start=1):
        if len(row) != 3 or not all(c.strip() for c in row):
            raise UsageError(
                f"watchlist: {path} row {n}: expected 3 non-empty columns subject,category,image"
            )
        subject, category, image = (c.strip() for c in row)
        img = Path(image)
        yield ReferencePhoto(subject, category, img if img.is_absolute() else path.parent / img)


def list_reference_photos(inputs: Sequence[Path]) -> list[ReferencePhoto]:
    """Every photo named by the inputs (folders of subject folders, or CSV files)."""
    photos: list[ReferencePhoto] = []
    for src in inputs:
        if src.is_dir():
            photos.extend(_folder_photos(src))
        elif src.is_file():
            photos.extend(_csv_photos(src))
        else:
            raise UsageError(f"watchlist: {src}: no such folder or CSV file")
    if not photos:
        raise UsageError("watchlist: no reference photos found")
    return photos


def face_region_sharpness(image: npt.NDArray[Any], box: npt.NDArray[np.float32]) -> float:
    """Variance of the Laplacian of the face box, clipped to the photo, at 112×112.

    A second blur check for reference photos: when a face fills the photo, the
    aligned crop takes in the black fill beyond the photo's edge, whose hard
    border looks sharp however blurred the face is. The box itself has no fill.
    """
    h, w = image.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(box[0] + box[2])), min(h, int(box[1] + box[3]))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0
    grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    grey = cv2.resize(grey, (112, 112), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


class EnrolmentChecker:
    """Quality control and embedding of reference photos (the live pipeline's detector,
    alignment, quality figures and embedder, with enrolment thresholds)."""

    def __init__(
        self,
        models: dict[str, PinnedModel],
        quality: QualitySection = ENROLMENT_QUALITY,
        threads: int = 1,
    ) -> None:
        self.analyser = StillPhotoAnalyser(models, quality_cfg=quality, threads=threads)
        self.quality = quality
        self.model = models["embedder"]

    def check(self, photo: ReferencePhoto) -> PhotoVerdict:
        image = cv2.imread(str(photo.path), cv2.IMREAD_COLOR)
        if image is None:
            return PhotoVerdict(photo, None, ("unreadable image",))
        if min(image.shape[:2]) < 8:
            return PhotoVerdict(photo, None, ("image too small",))
        faces = self.analyser.detect(image)
        if not faces:
            return PhotoVerdict(photo, None, ("no face found",))
        if len(faces) > 1:
            return PhotoVerdict(photo, None, (f"{len(faces)} faces found, need exactly one",))
        face = faces[0]
        quality = self.analyser.assess(image, face)
        reasons = list(quality.reasons)
        region = face_region_sharpness(image, face.box)
        if region < self.quality.min_sharpness and not any("blurred" in r for r in reasons):
            reasons.append(
                f"face too blurred: sharpness {region:.0f} < {self.quality.min_sharpness:g} "
                "(face region)"
            )
        if reasons:
            return PhotoVerdict(photo, None, tuple(reasons))
        return PhotoVerdict(photo, self.analyser.embed(image, face), ())
