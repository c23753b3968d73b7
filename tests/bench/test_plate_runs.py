"""The bench's plate figures with tiny sizes: synthetic vehicle frames are made, the plate
pipeline reads them (counts checked, timings only printed), and the faces-with-plates run
keeps both pipelines going (no timed assertion)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.bench.plate_runs import run_faces_with_plates, run_plates, vehicle_clip
from agent.config import AgentConfig, DeviceSection
from agent.matching.gallery import Gallery
from agent.vision.model_store import resolve_models, resolve_plate_models

pytestmark = pytest.mark.slow


def test_plates_are_read_in_the_bench_clip(plate_models_dir: Path, shared_data: Path) -> None:
    cfg = AgentConfig(device=DeviceSection(id="bench"))
    clip = vehicle_clip(shared_data / "scenes" / "no_faces", 2, 4)
    assert len(clip) == 4 and clip[0].shape == (720, 1280, 3)
    run = run_plates(cfg, resolve_plate_models(plate_models_dir), 1, clip)
    assert run["frames"] == 4 and run["counters"]["frames_read"] == 4
    # Both vehicles' plates are found and read as UK plates (not merely timed).
    assert run["counters"]["plate_candidates"] >= 4 and run["counters"]["reads"] >= 4
    print(run["fps"], run["counters"])


def test_faces_run_with_the_plate_lane_beside_it(plate_models_dir: Path, shared_data: Path) -> None:
    cfg = AgentConfig(device=DeviceSection(id="bench"))
    clip = vehicle_clip(shared_data / "scenes" / "no_faces", 1, 2)
    faces = [np.zeros((720, 1280, 3), np.uint8)] * 3
    gallery = Gallery(np.eye(1, 128, dtype=np.float32), ["x"])
    both = run_faces_with_plates(
        cfg,
        resolve_models(plate_models_dir),
        resolve_plate_models(plate_models_dir),
        1,
        gallery,
        0.5,
        faces,
        clip,
    )
    assert both["faces"]["frames"] == 3
    assert both["plates"]["frames"] >= 2
