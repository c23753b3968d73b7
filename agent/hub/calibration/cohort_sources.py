"""Where a calibration cohort comes from: faces of people known not to be on the watchlist.

A source is one of:

- an ``.npz`` file with an ``embeddings`` array (N×D, made with the watchlist's model;
  an optional ``model_id`` entry is checked against it; NaN rows are skipped);
- a labelled folder, ``<identity>/<image>`` (the product's own labelled set is one): the
  face nearest each photo's centre; identities that are subjects of the watchlist
  being calibrated (by folder name) are left out;
- a folder of photos (e.g. crowd scenes): every face in every photo.

Faces are kept only when they pass the camera's quality gate (``[quality]`` defaults),
because the rate being calibrated is per face the camera compares. The cohort's
embeddings live in memory only; nothing about its faces is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from agent.errors import UsageError
from agent.vision.model_store import PinnedModel
from agent.vision.still_photo import StillPhotoAnalyser

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Cohort:
    embeddings: npt.NDArray[np.float32]  # n×D, unit rows
    descriptions: tuple[str, ...]  # one line per source, for the operator

    @property
    def size(self) -> int:
        return len(self.embeddings)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UsageError(f"cohort: {path}: not a readable image")
    return np.asarray(image, np.uint8)


def _faces(
    analyser: StillPhotoAnalyser, image: npt.NDArray[np.uint8], central: bool
) -> list[npt.NDArray[np.float32]]:
    try:
        if central:
            det = analyser.central_face(image)
            dets = [det] if det is not None else []
        else:
            dets = analyser.detect(image)
    except ValueError:
        return []  # too small to hold a face
    return [analyser.embed(image, d) for d in dets if analyser.assess(image, d).passes]


def _from_npz(path: Path, model_id: str, dim: int) -> tuple[npt.NDArray[np.float32], str]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "embeddings" not in data:
                raise UsageError(f"cohort: {path}: no 'embeddings' array")
            emb = np.asarray(data["embeddings"], np.float32)
            declared = str(data["model_id"]) if "model_id" in data else None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cohort: {path}: not a readable .npz ({exc.__class__.__name__})") from exc
    if emb.ndim != 2 or emb.shape[1] != dim:
        raise UsageError(
            f"cohort: {path}: embeddings must be N×{dim} (the watchlist's model), got {emb.shape}"
        )
    if declared is not None and declared != model_id:
        raise UsageError(
            f"cohort: {path}: made with model {declared}, the watchlist with {model_id}"
        )
    emb = emb[np.isfinite(emb).all(axis=1)]
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb[norms[:, 0] > 0] / norms[norms[:, 0] > 0]
    return emb.astype(np.float32), f"{path}: {len(emb)} embeddings"


def load_cohort(
    sources: Sequence[Path],
    models: dict[str, PinnedModel],
    *,
    model_id: str,
    dim: int,
    exclude_identities: frozenset[str] = frozenset(),
    progress: Callable[[str], None] | None = None,
) -> Cohort:
    """The cohort from ``sources`` (see the module docstring); UsageError names a bad source."""
    if not sources:
        raise UsageError("cohort: no source given")
    analyser: StillPhotoAnalyser | None = None
    parts: list[npt.NDArray[np.float32]] = []
    lines: list[str] = []
    for source in sources:
        if source.is_file() and source.suffix.lower() == ".npz":
            emb, line = _from_npz(source, model_id, dim)
            parts.append(emb)
            lines.append(line)
            continue
        if not source.is_dir():
            raise UsageError(f"cohort: {source} is neither a folder nor an .npz file")
        if analyser is None:
            if models["embedder"].model_id != model_id:
                raise UsageError(
                    f"cohort: the hub runs model {models['embedder'].model_id}, the watchlist "
                    f"was made with {model_id}; give --models-dir with that model"
                )
            analyser = StillPhotoAnalyser(models)
        folders = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
        found: list[npt.NDArray[np.float32]] = []
        if folders:
            kept = [f for f in folders if f.name not in exclude_identities]
            photos = [p for f in kept for p in _images(f)]
            for i, photo in enumerate(photos):
                found += _faces(analyser, _read(photo), central=True)
                if progress:
                    progress(f"{source}: {i + 1}/{len(photos)} photos")
            left_out = len(folders) - len(kept)
            note = f", {left_out} watchlist identities left out" if left_out else ""
            lines.append(
                f"{source}: {len(found)} faces from {len(photos)} photos of {len(kept)} "
                f"identities{note}"
            )
        else:
            photos = _images(source)
            for i, photo in enumerate(photos):
                found += _faces(analyser, _read(photo), central=False)
                if progress:
                    progress(f"{source}: {i + 1}/{len(photos)} photos")
            lines.append(f"{source}: {len(found)} faces from {len(photos)} photos")
        if found:
            parts.append(np.stack(found).astype(np.float32))
    embeddings = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
    if not len(embeddings):
        raise UsageError("cohort: no usable face in " + ", ".join(map(str, sources)))
    return Cohort(embeddings, tuple(lines))
