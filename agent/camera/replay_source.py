"""Replay of a folder of images or a video file at a set frame rate.

Used by tests, benchmarks, the demo and the HIL rig in place of a camera.
Frames are paced against the monotonic clock (frame *i* is due at
``t_open + i / fps``); when the consumer falls behind, frames are not
queued up, they are skipped, exactly as a live camera would drop them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2

from agent.camera.frame_source import BgrImage, FrameSource, SourceDied
from agent.errors import CameraError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class ReplaySource(FrameSource):
    kind = "replay"

    def __init__(
        self,
        path: Path,
        fps: float = 30.0,
        loop: bool = False,
        realtime: bool = True,
        skip_late_frames: bool = True,
    ) -> None:
        super().__init__()
        if fps <= 0:
            raise CameraError(f"replay: fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.loop = loop
        self.realtime = realtime
        self.skip_late_frames = skip_late_frames
        self._files: list[Path] = []
        self._video: Any = None
        self._index = 0  # position in the recording (frames)
        self._t0 = 0.0
        self.skipped = 0

    def describe(self) -> str:
        return f"replay:{self.path}"

    def _open_device(self) -> None:
        if not self.path.exists():
            raise CameraError(f"replay: {self.path}: no such file or folder")
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise CameraError(f"replay: {self.path}: folder holds no images")
            self._files = files
        else:
            cap = cv2.VideoCapture(str(self.path))
            if not cap.isOpened():
                raise CameraError(f"replay: {self.path}: not a readable video")
            self._video = cap
        self._index = 0
        self._t0 = time.monotonic()

    def _close_device(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
        self._files = []

    def _length(self) -> int | None:
        return len(self._files) if self._files else None

    def _due_index(self) -> int:
        """Recording position due now, when the source keeps real time."""
        return int((time.monotonic() - self._t0) * self.fps)

    def _wait_until_due(self) -> None:
        due_at = self._t0 + self._index / self.fps
        delay = due_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _decode(self, index: int) -> BgrImage | None:
        if self._files:
            n = len(self._files)
            if index >= n and not self.loop:
                return None
            path = self._files[index % n]
            image: BgrImage | None = cv2.imread(str(path), cv2.IMREAD_COLOR)  # type: ignore[assignment]
            if image is None:
                raise SourceDied(f"replay: {path}: not a readable image")
            return image
        ok, image = self._video.read()
        if not ok and self.loop:
            self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._video.read()
        return image if ok else None

    def _read_image(self) -> tuple[BgrImage | None, float]:
        if self.realtime:
            if self.skip_late_frames:
                due = self._due_index()
                if due > self._index:
                    # Consumer is late: jump ahead as a live camera would.
                    skip = due - self._index
                    if self._video is not None:
                        for _ in range(skip):
                            if self._decode(self._index) is None:
                                return None, time.monotonic()
                            self._index += 1
                    else:
                        self._index = due
                    self.skipped += skip
            self._wait_until_due()
        image = self._decode(self._index)
        self._index += 1
        return image, time.monotonic()
