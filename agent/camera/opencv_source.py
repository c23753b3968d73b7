"""V4L2 devices, RTSP/HTTP streams and video files through OpenCV."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2

from agent.camera.frame_source import BgrImage, FrameSource, SourceDied
from agent.errors import CameraError

# Consecutive failed reads of a live source before it is declared dead.
MAX_FAILED_READS = 3


def parse_device(device: str) -> tuple[str | int, int, bool]:
    """Return (target, OpenCV API, is_live) for a device string."""
    if device.isdigit():
        return int(device), cv2.CAP_V4L2, True
    if device.startswith("/dev/video"):
        return device, cv2.CAP_V4L2, True
    if "://" in device:
        scheme = device.split("://", 1)[0].lower()
        if scheme not in ("rtsp", "rtsps", "http", "https"):
            raise CameraError(f"opencv: unsupported stream scheme {scheme!r} in {device!r}")
        return device, cv2.CAP_FFMPEG, True
    return device, cv2.CAP_ANY, False


class OpenCvSource(FrameSource):
    kind = "opencv"

    def __init__(
        self,
        device: str,
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 2.0,
    ) -> None:
        super().__init__()
        if not device:
            raise CameraError("opencv: no device given (camera.device)")
        self.device = device
        self.target, self.api, self.live = parse_device(device)
        self.width, self.height, self.fps = width, height, fps
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._cap: Any = None

    def describe(self) -> str:
        return f"opencv:{self.device}"

    def _open_device(self) -> None:
        if (
            isinstance(self.target, str)
            and self.api != cv2.CAP_FFMPEG
            and not Path(self.target).exists()
        ):
            raise CameraError(f"opencv: {self.target}: no such device or file")
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.read_timeout_s * 1000),
        ]
        cap = cv2.VideoCapture(self.target, self.api, params)
        if not cap.isOpened():
            cap.release()
            raise CameraError(
                f"opencv: {self.device}: cannot open (missing device or unreachable stream)"
            )
        if self.api == cv2.CAP_V4L2:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap = cap

    def _close_device(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _read_image(self) -> tuple[BgrImage | None, float]:
        failures = 0
        deadline = time.monotonic() + self.read_timeout_s
        while True:
            ok, image = self._cap.read()
            t = time.monotonic()
            if ok and image is not None:
                return image, t
            if not self.live:
                return None, t  # end of a video file
            failures += 1
            if failures >= MAX_FAILED_READS or t > deadline:
                raise SourceDied(f"opencv: {self.device}: stream stopped delivering frames")
