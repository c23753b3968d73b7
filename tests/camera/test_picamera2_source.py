"""Picamera2Source against a stand-in for picamera2.

libcamera's Python bindings exist only on Raspberry Pi OS and there is no Pi
camera on this machine, so `picamera2` is replaced by a small stub that
records calls and mimics the parts of its API the source uses (this is the
one hardware mock in the suite). The real module is exercised on the Pi rig.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pytest

from agent.camera.frame_source import SourceDied
from agent.camera.picamera2_source import Picamera2Source
from agent.errors import CameraError


class FakeRequest:
    def __init__(self, cam: FakePicamera2) -> None:
        self.cam = cam

    def make_array(self, stream: str) -> np.ndarray:
        assert stream == "main"
        w, h = self.cam.config["main"]["size"]
        return np.full((h, w, 3), self.cam.frames % 256, np.uint8)

    def release(self) -> None:
        self.cam.released += 1


class FakePicamera2:
    cameras: list[dict[str, Any]] = [{"Model": "imx708"}]
    instances: list[FakePicamera2] = []
    fail_start = False
    stall = False

    def __init__(self, camera_num: int = 0) -> None:
        if camera_num >= len(self.cameras):
            raise IndexError("list index out of range")
        self.calls: list[str] = []
        self.config: dict[str, Any] = {}
        self.frames = 0
        self.released = 0
        FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return FakePicamera2.cameras

    def create_video_configuration(
        self, main: dict[str, Any], controls: dict[str, Any], buffer_count: int
    ) -> dict[str, Any]:
        return {"main": main, "controls": controls, "buffer_count": buffer_count}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        if self.fail_start:
            raise RuntimeError("Failed to start camera: Device or resource busy")
        self.calls.append("start")

    def capture_request(self, wait: bool | None = None) -> str:
        assert wait is False
        return "job"

    def wait(self, job: str, timeout: float | None = None) -> FakeRequest:
        if self.stall:
            raise TimeoutError
        self.frames += 1
        return FakeRequest(self)

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakePicamera2]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.instances = []
    FakePicamera2.cameras = [{"Model": "imx708"}]
    FakePicamera2.fail_start = False
    FakePicamera2.stall = False
    return FakePicamera2


def test_open_read_close(fake_picamera2: type[FakePicamera2]) -> None:
    src = Picamera2Source(width=320, height=240, fps=15)
    src.open()
    cam = fake_picamera2.instances[0]
    assert cam.config["main"] == {"size": (320, 240), "format": "RGB888"}
    assert cam.config["controls"] == {"FrameRate": 15.0}
    f1, f2 = src.read(), src.read()
    assert f1 is not None and f2 is not None
    assert (f1.seq, f2.seq) == (1, 2)
    assert f1.image.shape == (240, 320, 3)
    assert cam.released == 2  # every request goes back to libcamera's pool
    src.close()
    assert cam.calls == ["configure", "start", "stop", "close"]


def test_no_camera_attached(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.cameras = []
    with pytest.raises(CameraError, match="no camera detected"):
        Picamera2Source().open()


def test_camera_index_out_of_range(fake_picamera2: type[FakePicamera2]) -> None:
    with pytest.raises(CameraError, match="camera 3 cannot be opened"):
        Picamera2Source(camera_num=3).open()


def test_busy_camera_is_released_and_reported(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.fail_start = True
    with pytest.raises(CameraError, match="cannot start .*busy"):
        Picamera2Source().open()
    assert fake_picamera2.instances[0].calls[-1] == "close"


def test_stalled_sensor_is_reported_as_dead(fake_picamera2: type[FakePicamera2]) -> None:
    src = Picamera2Source(read_timeout_s=0.1)
    src.open()
    fake_picamera2.stall = True
    with pytest.raises(SourceDied, match="no frame for 0.1 s"):
        src.read()
    src.close()


def test_missing_picamera2_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="picamera2: not available"):
        Picamera2Source().open()
