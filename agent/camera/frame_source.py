"""The one interface every camera backend implements.

The capture gate is the only caller of ``open()``/``close()``: a source is
closed (device released, not merely muted) whenever no activation is live.
Frames live only in memory; nothing here writes a frame anywhere.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.errors import CameraError

BgrImage = npt.NDArray[np.uint8]


class SourceDied(CameraError):
    """The source was open and producing frames, then stopped doing so."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A captured frame: BGR pixels, a per-open sequence number and a monotonic timestamp."""

    seq: int
    t_mono: float
    image: BgrImage


@dataclass
class SourceCounters:
    """What a source did, for health figures and for tests that count camera use."""

    opens: int = 0
    closes: int = 0
    frames: int = 0


class FrameSource(ABC):
    """A camera or a recording that yields frames between ``open()`` and ``close()``."""

    kind: str = "source"

    def __init__(self) -> None:
        self.counters = SourceCounters()
        self._lock = threading.RLock()
        self._open = False
        self._seq = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        """Acquire the device. Raises CameraError naming the problem when it cannot."""
        with self._lock:
            if self._open:
                return
            self._open_device()
            self._open = True
            self._seq = 0
            self.counters.opens += 1

    def close(self) -> None:
        """Release the device. Idempotent and never raises."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            self.counters.closes += 1
            # Closing must always succeed from the caller's view: the gate relies on it.
            with contextlib.suppress(Exception):
                self._close_device()

    def read(self) -> Frame | None:
        """Next frame; None at the end of a finite recording.

        Raises CameraError when the source is not open, SourceDied when it
        stopped producing frames.
        """
        if not self._open:
            raise CameraError(f"{self.kind}: read while closed")
        image, t_mono = self._read_image()
        if image is None:
            return None
        with self._lock:
            if not self._open:
                # The gate closed the camera while this frame was in flight: drop it.
                raise CameraError(f"{self.kind}: closed during read")
            self._seq += 1
            self.counters.frames += 1
            return Frame(self._seq, t_mono, image)

    def describe(self) -> str:
        return self.kind

    @abstractmethod
    def _open_device(self) -> None: ...

    @abstractmethod
    def _close_device(self) -> None: ...

    @abstractmethod
    def _read_image(self) -> tuple[BgrImage | None, float]:
        """Return (image, monotonic capture time), or (None, t) at end of stream."""
