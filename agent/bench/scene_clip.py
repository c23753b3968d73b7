"""The bench's test material: a watchlist enrolled from photos and scenes of those people.

Each identity is enrolled from one photo (the first, in name order, where a
face is found) through the still-photo path; the scenes paste *other* photos
of the same people, so every match in the bench is a genuine cross-photo match.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from agent.bench.gallery_scaling import random_unit_rows
from agent.errors import UsageError
from agent.matching.gallery import Gallery
from agent.vision.model_store import PinnedModel
from agent.vision.still_photo import StillPhotoAnalyser

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def scene_generator() -> ModuleType:
    """``hil.synthetic_scene``, also when the package is run from a source checkout."""
    try:
        return importlib.import_module("hil.synthetic_scene")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[2]
        if not (root / "hil" / "synthetic_scene.py").is_file():
            raise UsageError(
                "bench: the scene generator (hil/synthetic_scene.py) is not installed; "
                "run the bench from the source tree"
            ) from None
        sys.path.insert(0, str(root))
        return importlib.import_module("hil.synthetic_scene")


@dataclass(frozen=True)
class Watchlist:
    gallery: Gallery
    enrolled: dict[str, str]  # identity -> "<identity>/<photo>" used for enrolment


def enrol_watchlist(
    models: dict[str, PinnedModel], faces_root: Path, filler: int, seed: int = 0
) -> Watchlist:
    """One entry per identity of ``faces_root`` plus ``filler`` random entries."""
    if not faces_root.is_dir():
        raise UsageError(f"bench: faces folder {faces_root} does not exist")
    analyser = StillPhotoAnalyser(models, threads=1)
    rows: list[np.ndarray] = []
    refs: list[str] = []
    enrolled: dict[str, str] = {}
    for ident_dir in sorted(p for p in faces_root.iterdir() if p.is_dir()):
        for photo in sorted(p for p in ident_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
            emb = None if image is None else analyser.embed_central(image)
            if emb is not None:
                rows.append(emb)
                refs.append(ident_dir.name)
                enrolled[ident_dir.name] = f"{ident_dir.name}/{photo.name}"
                break
    if len(enrolled) < 4:
        raise UsageError(f"bench: {faces_root} needs at least 4 identities with a usable photo")
    if filler:
        rows.extend(random_unit_rows(filler, rows[0].shape[0], seed))
        refs.extend(f"filler-{i}" for i in range(filler))
    return Watchlist(Gallery(np.stack(rows).astype(np.float32), refs), enrolled)


def make_scene(
    out_dir: Path,
    watchlist: Watchlist,
    faces_root: Path,
    backgrounds_root: Path,
    models_dir: Path,
    *,
    seconds: float,
    seed: int,
    people: int = 4,
) -> Any:
    """A 1280×720, 30 fps scene of ``people`` watchlist identities; returns its SceneTruth."""
    gen = scene_generator()
    import random

    identities = tuple(random.Random(seed).sample(sorted(watchlist.enrolled), people))
    spec = gen.SceneSpec(
        width=1280,
        height=720,
        fps=30.0,
        seconds=seconds,
        identities=identities,
        exclude_photos=tuple(watchlist.enrolled.values()),
        stagger_s=0.25,  # everyone in view early: most frames hold all four faces
        seed=seed,
    )
    return gen.generate_scene(out_dir, spec, faces_root, backgrounds_root, models_dir=models_dir)
