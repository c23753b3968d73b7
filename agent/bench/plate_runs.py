"""The number-plate figures of ``lfr-agent bench``: frames per second the plate pipeline
reads at 1280x720 with 1 and 2 vehicles in view, and the face pipeline's sustained fps
while the plate pipeline runs beside it in its own thread (as a plates deployment's lane
does on a camera running both), as a ratio to faces alone measured in the same run.

The vehicle frames are synthetic (``hil/synthetic_plates.py``: drawn vehicles with UK
plates in OpenCV's font over real street scenes). Every frame is read (``max_fps``
raised to the replay rate's ceiling) so the figure is the pipeline's own rate; on a
camera ``plates.max_fps`` caps it.
"""

from __future__ import annotations

import dataclasses
import importlib
import random
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from agent.bench.figures import summarise_ms
from agent.bench.pipeline_runs import run_sustained
from agent.camera.frame_source import BgrImage, Frame
from agent.config import AgentConfig
from agent.errors import UsageError
from agent.matching.gallery import Gallery
from agent.plates.plate_pipeline import PlatePipeline
from agent.vision.model_store import PinnedModel

#: Plates drawn on the bench's vehicles (valid current-format plates; none is listed).
_PLATES = ("KX19 LMN", "GD21 HVW")
_FRAME_DT = 1.0 / 15.0


def plate_generator() -> ModuleType:
    """``hil.synthetic_plates``, also when the package is run from a source checkout."""
    try:
        return importlib.import_module("hil.synthetic_plates")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[2]
        if not (root / "hil" / "synthetic_plates.py").is_file():
            raise UsageError(
                "bench: the plate generator (hil/synthetic_plates.py) is not installed; "
                "run the bench from the source tree"
            ) from None
        sys.path.insert(0, str(root))
        return importlib.import_module("hil.synthetic_plates")


def vehicle_clip(
    backgrounds_root: Path, vehicles: int, frames: int, seed: int = 0
) -> list[BgrImage]:
    """``frames`` 1280x720 frames with ``vehicles`` (1 or 2) crossing a street scene."""
    gen = plate_generator()
    scenes = sorted(p for p in backgrounds_root.glob("*") if p.suffix.lower() in {".jpg", ".png"})
    if not scenes:
        raise UsageError(f"bench: no background scenes in {backgrounds_root}")
    read = cv2.imread(str(scenes[seed % len(scenes)]), cv2.IMREAD_COLOR)
    if read is None:
        raise UsageError(f"bench: cannot read {scenes[seed % len(scenes)]}")
    background = cv2.resize(read, (1280, 720), interpolation=cv2.INTER_AREA)
    clip: list[BgrImage] = []
    for i in range(frames):
        frame = background.copy()
        u = i / max(frames - 1, 1)
        for k in range(vehicles):
            width = 440.0 if k == 0 else 340.0
            x = 260 + u * 620 if k == 0 else 1020 - u * 560
            gen.draw_vehicle(
                frame,
                cx=x,
                bottom=700.0 if k == 0 else 560.0,
                width=width,
                plate_text=_PLATES[k],
                rear=k == 0,
                rng=random.Random(seed * 10 + k),
            )
        clip.append(np.ascontiguousarray(frame))
    return clip


def _plate_pipeline(
    cfg: AgentConfig, models: dict[str, PinnedModel], threads: int
) -> PlatePipeline:
    every_frame = dataclasses.replace(cfg.plates, max_fps=60.0)
    pipeline = PlatePipeline(dataclasses.replace(cfg, plates=every_frame), models, threads=threads)
    # First runs of an onnxruntime session allocate and pick kernels: not part of the figures.
    pipeline.detector.detect(np.zeros((720, 1280, 3), np.uint8))
    pipeline.recogniser.read_strip(np.zeros((48, 160, 3), np.uint8))
    return pipeline


def run_plates(
    cfg: AgentConfig,
    models: dict[str, PinnedModel],
    threads: int,
    images: Sequence[BgrImage],
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Frames the plate pipeline reads per second over ``images`` (looped while ``stop``
    is given and not set), with its per-frame times and counts."""
    pipeline = _plate_pipeline(cfg, models, threads)
    per_frame: list[float] = []
    n = 0
    t_start = time.perf_counter()
    while True:
        for image in images:
            t0 = time.perf_counter()
            pipeline.process(Frame(n + 1, n * _FRAME_DT, image))
            per_frame.append(time.perf_counter() - t0)
            n += 1
        if stop is None or stop.is_set():
            break
    wall = time.perf_counter() - t_start
    counters = pipeline.counters.as_dict()
    pipeline.reset()
    return {
        "threads": threads,
        "frames": n,
        "seconds": round(wall, 3),
        "fps": round(n / wall, 2) if wall > 0 else float("nan"),
        "process_ms": summarise_ms(per_frame),
        "counters": counters,
    }


def run_faces_with_plates(
    cfg: AgentConfig,
    face_models: dict[str, PinnedModel],
    plate_models: dict[str, PinnedModel],
    threads: int,
    gallery: Gallery,
    threshold: float,
    face_images: Sequence[BgrImage],
    vehicle_images: Sequence[BgrImage],
) -> dict[str, Any]:
    """The face pipeline's sustained run while the plate pipeline reads in another thread
    for as long as it lasts (each pipeline with ``threads`` onnxruntime threads)."""
    stop = threading.Event()
    plates: dict[str, Any] = {}

    def plate_lane() -> None:
        plates.update(run_plates(cfg, plate_models, threads, vehicle_images, stop))

    lane = threading.Thread(target=plate_lane, name="bench-plates", daemon=True)
    lane.start()
    try:
        faces = run_sustained(cfg, face_models, threads, gallery, threshold, face_images)
    finally:
        stop.set()
        lane.join()
    return {"faces": faces, "plates": plates}
