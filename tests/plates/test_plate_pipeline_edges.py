"""The plate pipeline (real PP-OCR models) does not vote with a read of a plate cut by
the frame edge: a vehicle entering shows part of its plate, and those few characters
would count against its full reads. The vehicle is drawn over a real street scene
(SYNTHETIC plate, hil/synthetic_plates.py)."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.camera.frame_source import Frame
from agent.config import AgentConfig, DeviceSection
from agent.plates.plate_pipeline import PlatePipeline
from agent.vision.model_store import resolve_plate_models
from hil.synthetic_plates import draw_vehicle

pytestmark = pytest.mark.slow


def _frame(shared_data: Path, cx: float) -> np.ndarray:
    scene = sorted((shared_data / "scenes" / "no_faces").glob("*.jpg"))[0]
    image = cv2.resize(cv2.imread(str(scene)), (1280, 720))
    draw_vehicle(
        image,
        cx=cx,
        bottom=700.0,
        width=460.0,
        plate_text="KX19 LMN",
        rear=True,
        rng=random.Random(1),
    )
    return image


def test_a_plate_cut_by_the_frame_edge_is_not_read(
    plate_models_dir: Path, shared_data: Path
) -> None:
    cfg = AgentConfig(device=DeviceSection(id="edge"))
    pipeline = PlatePipeline(cfg, resolve_plate_models(plate_models_dir), threads=1)
    cut = _frame(shared_data, cx=20.0)  # the plate's left half is out of view
    pipeline.process(Frame(1, 0.0, cut))
    assert pipeline.counters.plate_candidates >= 1
    assert pipeline.counters.reads == 0
    whole = _frame(shared_data, cx=400.0)
    pipeline.process(Frame(2, 0.2, whole))
    assert pipeline.counters.reads >= 1
