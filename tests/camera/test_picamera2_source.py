"""Picamera2Source driving the real picamera2 package over a stand-in libcamera.

What is real: picamera2 itself (installed from PyPI, a dev dependency), so its
camera manager and event thread, configuration building and validation, Pi
sensor-mode selection, request recycling, job queue, DMA-heap allocator and
array mapping all run as on a Raspberry Pi.

What is stubbed, and why: libcamera's Python bindings (a C++ extension shipped
only with Raspberry Pi OS) and pykms (DRM bindings picamera2 imports for its
preview) do not exist here, and there is no camera. ``stub_libcamera/`` stands
in for both: it emulates one CSI camera whose sensor thread writes a synthetic
BGR pattern into each queued request. The kernel DMA heap (/dev/dma_heap) does
not exist either, so picamera2's allocator gets memfd buffers instead
(``stub_libcamera/memfd_heap.py``). Tests inject hardware faults through the
stub's ``rig``: no camera, camera busy, start failure, sensor stall.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from agent.camera.frame_source import SourceDied
from agent.camera.picamera2_source import Picamera2Source
from agent.errors import CameraError

STUB_DIR = Path(__file__).parent / "stub_libcamera"
STUBBED = ("picamera2", "libcamera", "pykms", "kms", "memfd_heap")

# picamera2's null preview uses Thread.setDaemon, deprecated since Python 3.10.
pytestmark = pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")


def _forget_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop cached imports so each test imports picamera2 afresh over the stub."""
    for name in list(sys.modules):
        if name.split(".")[0] in STUBBED:
            monkeypatch.delitem(sys.modules, name)


@pytest.fixture
def libcamera(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The stand-in libcamera with one camera attached, under a freshly imported picamera2."""
    if importlib.util.find_spec("picamera2") is None:
        pytest.fail("picamera2 is not installed: pip install -e '.[dev]' (needs libcap-dev)")
    _forget_modules(monkeypatch)
    monkeypatch.syspath_prepend(str(STUB_DIR))
    import libcamera as stub
    import memfd_heap
    import picamera2  # noqa: F401 - the real package, now importable

    memfd_heap.install(monkeypatch)
    stub.rig.attach("imx708")
    yield stub
    stub.rig.reset()
    _forget_modules(monkeypatch)


def _main_stream(rig: Any) -> Any:
    config = rig.cameras[0]._config
    assert config is not None, "picamera2 never configured the camera"
    return config


def test_open_read_close_through_real_picamera2(libcamera: ModuleType) -> None:
    src = Picamera2Source(width=320, height=240, fps=50)
    src.open()
    config = _main_stream(libcamera.rig)
    main = config.at(0)
    assert (str(main.pixel_format), main.size.width, main.size.height) == ("RGB888", 320, 240)
    assert main.buffer_count == 4
    # A Pi camera gets a raw stream on the closest sensor mode, chosen by picamera2.
    assert str(config.at(1).pixel_format) == "SRGGB10_CSI2P"
    sensor = config.sensor_config
    assert (sensor.output_size.width, sensor.output_size.height, sensor.bit_depth) == (
        1536,
        864,
        10,
    )
    limits = libcamera.controls.FrameDurationLimits
    assert libcamera.rig.started_controls[limits] == (20000, 20000)  # 50 fps

    frames = [src.read() for _ in range(3)]
    assert all(f is not None for f in frames)
    blues = []
    for f in frames:
        assert f is not None
        assert f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8
        # The stub writes B = sensor frame number, G = column, R = row into 64-byte-aligned
        # rows; picamera2 must strip the padding and keep libcamera's B,G,R order.
        assert (f.image[:, :, 1] == np.arange(320)[None, :] % 256).all()
        assert (f.image[:, :, 2] == np.arange(240)[:, None] % 256).all()
        assert len(np.unique(f.image[:, :, 0])) == 1
        blues.append(int(f.image[0, 0, 0]))
    assert [f.seq for f in frames if f] == [1, 2, 3]
    assert blues == sorted(set(blues)), "each read must be a new sensor frame"

    src.close()
    assert libcamera.rig.calls == ["acquire", "configure", "start", "stop", "release"]
    assert not libcamera.rig.cameras[0].acquired


def test_camera_can_be_reopened_after_close(libcamera: ModuleType) -> None:
    src = Picamera2Source(width=160, height=120, fps=60)
    for _ in range(2):
        src.open()
        assert src.read() is not None
        src.close()
    assert libcamera.rig.calls.count("acquire") == libcamera.rig.calls.count("release") == 2
    assert (src.counters.opens, src.counters.closes) == (2, 2)


def test_no_camera_attached(libcamera: ModuleType) -> None:
    libcamera.rig.cameras = []
    with pytest.raises(CameraError, match="no camera detected"):
        Picamera2Source().open()


def test_camera_index_out_of_range(libcamera: ModuleType) -> None:
    with pytest.raises(CameraError, match="camera 3 cannot be opened .*No camera number 3"):
        Picamera2Source(camera_num=3).open()


def test_busy_camera_names_the_reason(libcamera: ModuleType) -> None:
    libcamera.rig.busy = True  # another process holds the camera
    with pytest.raises(CameraError, match="camera 0 cannot be opened .*Device or resource busy"):
        Picamera2Source().open()


def test_start_failure_releases_the_camera(libcamera: ModuleType) -> None:
    libcamera.rig.fail_start = True
    src = Picamera2Source()
    with pytest.raises(CameraError, match="camera 0 cannot start .*busy"):
        src.open()
    assert libcamera.rig.calls[-1] == "release" and not libcamera.rig.cameras[0].acquired
    assert not src.is_open


def test_stalled_sensor_is_reported_as_dead_and_still_closes(libcamera: ModuleType) -> None:
    src = Picamera2Source(width=160, height=120, fps=60, read_timeout_s=0.3)
    src.open()
    assert src.read() is not None
    libcamera.rig.stalled.set()  # ribbon cable pulled: no more frames
    # A frame already completed before the stall may still be handed out once.
    with pytest.raises(SourceDied, match="no frame for 0.3 s"):
        for _ in range(2):
            src.read()
    # picamera2 queues stop() behind the abandoned capture: close must not hang on it.
    closer = threading.Thread(target=src.close, daemon=True)
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "close() hung after the sensor stalled"
    assert libcamera.rig.calls[-2:] == ["stop", "release"]


def test_libcamera_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off Raspberry Pi OS: picamera2 installed, libcamera's bindings absent (no stub)."""
    if importlib.util.find_spec("picamera2") is None:
        pytest.fail("picamera2 is not installed: pip install -e '.[dev]' (needs libcap-dev)")
    _forget_modules(monkeypatch)
    with pytest.raises(CameraError, match="picamera2: not available .*libcamera"):
        Picamera2Source().open()


def test_missing_picamera2_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="picamera2: not available"):
        Picamera2Source().open()
