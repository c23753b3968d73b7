"""The Raspberry Pi camera through picamera2 (libcamera).

picamera2 is imported only when this source is opened: it exists only on
Raspberry Pi OS, where libcamera's Python bindings are packaged.
"""

from __future__ import annotations

import time
from typing import Any

from agent.camera.frame_source import BgrImage, FrameSource, SourceDied
from agent.errors import CameraError


class Picamera2Source(FrameSource):
    kind = "picamera2"

    def __init__(
        self,
        camera_num: int = 0,
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
        read_timeout_s: float = 2.0,
    ) -> None:
        super().__init__()
        self.camera_num = camera_num
        self.width, self.height, self.fps = width, height, fps
        self.read_timeout_s = read_timeout_s
        self._cam: Any = None

    def describe(self) -> str:
        return f"picamera2:{self.camera_num}"

    def _open_device(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CameraError(
                f"picamera2: not available ({exc}); install python3-picamera2 on Raspberry Pi OS"
            ) from exc
        try:
            if not Picamera2.global_camera_info():
                raise CameraError(
                    "picamera2: no camera detected (check the ribbon cable and 'rpicam-hello --list-cameras')"
                )
            cam = Picamera2(self.camera_num)
        except CameraError:
            raise
        except Exception as exc:  # picamera2 raises RuntimeError for absent or busy cameras
            raise CameraError(
                f"picamera2: camera {self.camera_num} cannot be opened ({_root_cause(exc)})"
            ) from exc
        try:
            # "RGB888" in libcamera's naming is B,G,R byte order: exactly OpenCV's BGR.
            # queue=False: each read waits for a frame exposed after it was asked for, rather
            # than taking one picamera2 held back (stale, and still there after the sensor died).
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameRate": float(self.fps)},
                buffer_count=4,
                queue=False,
            )
            cam.configure(config)
            cam.start()
        except Exception as exc:
            cam.close()
            raise CameraError(
                f"picamera2: camera {self.camera_num} cannot start ({_root_cause(exc)})"
            ) from exc
        self._cam = cam

    def _close_device(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                # picamera2 runs stop() as a job queued behind any capture still waiting for
                # a frame; with a dead sensor that capture never finishes, so stop() would hang.
                cam.cancel_all_and_flush()
                cam.stop()
            finally:
                cam.close()

    def _read_image(self) -> tuple[BgrImage | None, float]:
        try:
            # wait=False returns a Job; Picamera2.wait bounds it so a dead sensor cannot hang us.
            job = self._cam.capture_request(wait=False)
            request = self._cam.wait(job, timeout=self.read_timeout_s)
        except TimeoutError as exc:
            # The abandoned capture job would otherwise take the next frame, or block stop().
            self._cam.cancel_all_and_flush()
            raise SourceDied(f"picamera2: no frame for {self.read_timeout_s} s") from exc
        except Exception as exc:
            raise SourceDied(f"picamera2: capture failed ({exc})") from exc
        t = time.monotonic()
        try:
            image: BgrImage = request.make_array("main").copy()
        finally:
            request.release()
        return image, t


def _root_cause(exc: BaseException) -> str:
    """The innermost message: picamera2 wraps libcamera's reason ("busy") in generic ones."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc) or type(exc).__name__
