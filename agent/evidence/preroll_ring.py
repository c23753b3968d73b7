"""The pre-roll: the last few seconds of downscaled frames, in RAM only.

A clip needs the seconds *before* an alert, so the camera must hold them; it holds them
nowhere but here: a bounded ring of downscaled frames in memory, never written, never
sent, and wiped whenever the camera closes (``wipe``). Its size is fixed by the
configuration: ``ceil(preroll_s × fps) + 1`` frames of ``width × height × 3`` bytes.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

BgrImage = np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class ClipFrame:
    """A downscaled frame and its monotonic capture time."""

    t_mono: float
    image: BgrImage


class PrerollRing:
    """Thread-safe; ``push`` drops the oldest frame once the ring is full or it is older
    than the pre-roll."""

    def __init__(self, preroll_s: float, fps: int) -> None:
        self.preroll_s = preroll_s
        self.capacity = math.ceil(preroll_s * fps) + 1
        self._frames: deque[ClipFrame] = deque(maxlen=self.capacity)
        self._lock = threading.Lock()
        self.wipes = 0

    def push(self, frame: ClipFrame) -> None:
        with self._lock:
            self._frames.append(frame)
            while self._frames and frame.t_mono - self._frames[0].t_mono > self.preroll_s:
                self._frames.popleft()

    def since(self, t_mono: float) -> list[ClipFrame]:
        """The frames captured at or after ``t_mono``, oldest first."""
        with self._lock:
            return [f for f in self._frames if f.t_mono >= t_mono]

    def wipe(self) -> None:
        with self._lock:
            self._frames.clear()
            self.wipes += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(f.image.nbytes for f in self._frames)
