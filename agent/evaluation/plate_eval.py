"""Plate reading accuracy on a labelled still set, and false hits against a hotlist.

The set is a folder of images, each with a ``.txt`` beside it holding the plate as
written (one per line; an empty file: no plate). Every image is read with the camera's
own stages (``StillPlateReader``: text detection, plate finding, recognition, UK format),
one read per plate candidate, no voting (the live pipeline votes over several frames, so
these are single-frame figures).

Figures:

* exact-plate accuracy: labelled plates read exactly (after normalisation) / labelled;
* character accuracy: 1 − edit distance / length, for each labelled plate against its
  closest read in the image (0 when nothing was read), averaged;
* hits and false hits against a synthetic hotlist of ``hotlist_size`` plates, hashed with
  a fresh key exactly as on a camera: every other labelled plate is listed (they should
  hit), plus a one-character neighbour of every labelled plate (a near miss a misread
  could land on), plus random current-format plates. At each threshold a read at or
  above it that hits the hotlist is a true hit when it is the image's own listed plate
  and a false hit otherwise; false hits are given per 1,000 reads.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from agent.errors import UsageError
from agent.matching.hotlist_bundle import new_hotlist_key, plate_digest
from agent.plates.still_plates import StillPlateReader
from agent.plates.uk_plate_format import DIGITS, LETTERS, normalise, plate_format

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_THRESHOLDS = (0.5, 0.7, 0.9)
DEFAULT_HOTLIST_SIZE = 10_000
_AREA = "ABCDEFGHJKLMNOPRSTUVWXY"
_LETTER = "ABCDEFGHJKLMNOPRSTUVWXYZ"


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    plates: tuple[str, ...]  # normal form


def list_labelled_images(folder: Path) -> list[LabelledImage]:
    """Every image with a ``.txt`` label beside it; UsageError when there are none or a
    label is not a UK plate."""
    if not folder.is_dir():
        raise UsageError(f"eval plates: --data {folder} is not a folder")
    out = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label = path.with_suffix(".txt")
        if not label.is_file():
            continue
        try:
            lines = label.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"eval plates: {label}: unreadable ({exc})") from exc
        plates = tuple(normalise(line) for line in lines if line.strip())
        for p in plates:
            if plate_format(p) is None:
                raise UsageError(f"eval plates: {label}: {p[:20]!r} is not a UK plate")
        out.append(LabelledImage(path, plates))
    if not out:
        raise UsageError(f"eval plates: no labelled images (IMAGE + IMAGE.txt) in {folder}")
    return out


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _neighbour(plate: str, rng: random.Random) -> str:
    """The plate with one character changed to another of its class."""
    i = rng.randrange(len(plate))
    pool = DIGITS if plate[i] in DIGITS else LETTERS
    c = rng.choice([x for x in pool if x != plate[i]])
    return plate[:i] + c + plate[i + 1 :]


def _random_current(rng: random.Random) -> str:
    return (
        rng.choice(_AREA)
        + rng.choice(_LETTER)
        + f"{rng.randint(0, 99):02d}"
        + "".join(rng.choice(_LETTER) for _ in range(3))
    )


def synthetic_hotlist(labelled: Sequence[str], size: int, seed: int) -> tuple[set[str], set[str]]:
    """(every hotlisted plate, the labelled plates among them)."""
    rng = random.Random(seed)
    listed = {p for i, p in enumerate(labelled) if i % 2 == 0}
    hot = set(listed)
    for p in labelled:
        if len(hot) < size:
            n = _neighbour(p, rng)
            if n not in labelled:
                hot.add(n)
    while len(hot) < size:
        p = _random_current(rng)
        if p not in labelled:
            hot.add(p)
    return hot, listed


@dataclass
class ThresholdFigures:
    threshold: float
    reads_at_or_above: int = 0
    true_hits: int = 0
    false_hits: int = 0
    listed: int = 0

    @property
    def hit_rate(self) -> float:
        return self.true_hits / self.listed if self.listed else float("nan")

    @property
    def false_hits_per_1000_reads(self) -> float:
        return 1000.0 * self.false_hits / self.reads_at_or_above if self.reads_at_or_above else 0.0


@dataclass
class PlateEvalResult:
    images: int
    plates: int
    exact: int
    char_accuracy: float
    reads: int
    reads_not_labelled: int
    hotlist_size: int
    by_format: dict[str, tuple[int, int]]  # format → (exact, labelled)
    thresholds: list[ThresholdFigures]
    ms_per_image: float
    read_confidences: list[float] = field(default_factory=list, repr=False)

    @property
    def exact_accuracy(self) -> float:
        return self.exact / self.plates if self.plates else float("nan")

    def as_dict(self) -> dict[str, object]:
        return {
            "synthetic_or_labelled_set": True,
            "images": self.images,
            "labelled_plates": self.plates,
            "exact_plate_accuracy": round(self.exact_accuracy, 4),
            "character_accuracy": round(self.char_accuracy, 4),
            "reads": self.reads,
            "reads_not_a_labelled_plate": self.reads_not_labelled,
            "hotlist_size": self.hotlist_size,
            "by_format": {k: {"exact": e, "labelled": n} for k, (e, n) in self.by_format.items()},
            "thresholds": [
                {
                    "threshold": t.threshold,
                    "reads_at_or_above": t.reads_at_or_above,
                    "listed_plates": t.listed,
                    "true_hits": t.true_hits,
                    "hit_rate": round(t.hit_rate, 4),
                    "false_hits": t.false_hits,
                    "false_hits_per_1000_reads": round(t.false_hits_per_1000_reads, 3),
                }
                for t in self.thresholds
            ],
            "ms_per_image": round(self.ms_per_image, 1),
        }


def evaluate_plates(
    images: Sequence[LabelledImage],
    reader: StillPlateReader,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    hotlist_size: int = DEFAULT_HOTLIST_SIZE,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> PlateEvalResult:
    labelled = [p for img in images for p in img.plates]
    hot, listed = synthetic_hotlist(labelled, hotlist_size, seed)
    key = new_hotlist_key()
    digests = {plate_digest(key, p) for p in hot}
    figs = [ThresholdFigures(t, listed=len(listed)) for t in sorted(set(thresholds))]
    exact = reads = not_labelled = 0
    char_scores: list[float] = []
    by_format: dict[str, list[int]] = {}
    confidences: list[float] = []
    elapsed = 0.0
    for n, item in enumerate(images, 1):
        decoded = cv2.imread(str(item.path))
        if decoded is None:
            raise UsageError(f"eval plates: {item.path} is not a readable image")
        image = np.asarray(decoded, np.uint8)
        t0 = time.perf_counter()
        got = reader.read(image)
        elapsed += time.perf_counter() - t0
        read_plates = [r.plate for r in got]
        reads += len(got)
        not_labelled += sum(1 for p in read_plates if p not in item.plates)
        for p in item.plates:
            fmt = plate_format(p) or "?"
            stats = by_format.setdefault(fmt, [0, 0])
            stats[1] += 1
            if p in read_plates:
                exact += 1
                stats[0] += 1
            best = min((edit_distance(p, r) for r in read_plates), default=len(p))
            char_scores.append(max(0.0, 1.0 - best / len(p)))
        for r in got:
            confidences.append(r.confidence)
            hit = plate_digest(key, r.plate) in digests
            for f in figs:
                if r.confidence < f.threshold:
                    continue
                f.reads_at_or_above += 1
                if hit:
                    if r.plate in item.plates and r.plate in listed:
                        f.true_hits += 1
                    else:
                        f.false_hits += 1
        del got, read_plates
        if progress:
            progress(n, len(images))
    return PlateEvalResult(
        images=len(images),
        plates=len(labelled),
        exact=exact,
        char_accuracy=statistics.fmean(char_scores) if char_scores else float("nan"),
        reads=reads,
        reads_not_labelled=not_labelled,
        hotlist_size=len(hot),
        by_format={k: (v[0], v[1]) for k, v in sorted(by_format.items())},
        thresholds=figs,
        ms_per_image=1000.0 * elapsed / max(1, len(images)),
        read_confidences=confidences,
    )
