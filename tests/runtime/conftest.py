"""Fixtures of the daemon tests: a virtual site (real broker, keys, hub) and a scene."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime.daemon_world import PASSER_BY, WATCHED

from hil.local_broker import MosquittoBroker
from hil.synthetic_scene import SceneSpec, generate_scene
from hil.virtual_site import VirtualSite


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, models_dir: Path) -> Path:
    """A 6 s street replay where the watched person and a passer-by walk through."""
    out = tmp_path_factory.mktemp("scene")
    spec = SceneSpec(
        fps=15.0,
        seconds=6.0,
        identities=(WATCHED, PASSER_BY),
        exclude_photos=(f"{WATCHED}/1.jpg",),
        occluder=False,
        seed=3,
    )
    generate_scene(
        out, spec, shared_data / "faces", shared_data / "scenes" / "no_faces", models_dir=models_dir
    )
    return out


@pytest.fixture
def site(tmp_path: Path, mqtt_broker: MosquittoBroker, models_dir: Path) -> Iterator[VirtualSite]:
    yield VirtualSite(tmp_path / "site", mqtt_broker, models_dir, device_id="lfr-e2e-01")
