"""The scene the device's replay camera watches and the watchlist embeddings, made once per
run from ``../shared/data``.

Three watchlist people walk through a short looping street scene with a passer-by, so
alerts keep coming while a deployment is live. The watchlist also carries filler
entries (random unit vectors nobody in the scene matches), so the sealed bundle has
the size of a real one (≈ 190 KiB, several pages: a torn overwrite can keep some).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from agent.vision.model_store import PinnedModel, resolve_models
from agent.vision.still_photo import StillPhotoAnalyser
from hil.synthetic_scene import SceneSpec, generate_scene

WATCHED = ("deepface_id01", "deepface_id02", "deepface_id03")
PASSERS_BY = ("deepface_id10",)
ENROLMENT_PHOTO = "1.jpg"  # never pasted into the scene
FILLER_ENTRIES = 700  # ≈ 190 KiB sealed


@dataclass(frozen=True)
class TestMaterial:
    scene_dir: Path
    refs: list[str]
    embeddings: npt.NDArray[np.float32]
    embedder: PinnedModel


def make_material(work: Path, shared_data: Path, models_dir: Path) -> TestMaterial:
    scene_dir = work / "scene"
    if not (scene_dir / "truth.json").exists():
        spec = SceneSpec(
            width=640,
            height=360,
            fps=10.0,
            seconds=6.0,
            identities=(*WATCHED, *PASSERS_BY),
            exclude_photos=tuple(f"{w}/{ENROLMENT_PHOTO}" for w in WATCHED),
            occluder=False,
            stagger_s=1.2,
            min_face_px=60.0,
            max_face_px=110.0,
            seed=22,
        )
        generate_scene(
            scene_dir,
            spec,
            shared_data / "faces",
            shared_data / "scenes" / "no_faces",
            models_dir=models_dir,
        )
    models = resolve_models(models_dir)
    analyser = StillPhotoAnalyser(models)
    refs, rows = [], []
    for i, person in enumerate(WATCHED, start=1):
        image = cv2.imread(str(shared_data / "faces" / person / ENROLMENT_PHOTO))
        if image is None:
            raise FileNotFoundError(f"{person}/{ENROLMENT_PHOTO} not readable in {shared_data}")
        embedding = analyser.embed_central(image)
        if embedding is None:
            raise ValueError(f"no face found in {person}/{ENROLMENT_PHOTO}")
        refs.append(f"subject-{i:04d}")
        rows.append(embedding.astype(np.float32))
    rng = np.random.default_rng(22)
    filler = rng.standard_normal((FILLER_ENTRIES, rows[0].shape[0])).astype(np.float32)
    filler /= np.linalg.norm(filler, axis=1, keepdims=True)
    refs += [f"filler-{i:04d}" for i in range(FILLER_ENTRIES)]
    embeddings = np.concatenate([np.stack(rows), filler])
    return TestMaterial(scene_dir, refs, embeddings, models["embedder"])
