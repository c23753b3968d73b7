"""Clips around alerts: the pre-roll ring, the post-roll, and the encoding, on one thread.

The capture thread offers every frame (``offer``: a subsampling check and a bounded
hand-over, nothing more, so capture never waits for video). The clip thread downscales
the frames it keeps into the pre-roll ring (RAM only). When an alert has been stored the
daemon orders its clip (``order``): the frames from ``preroll_s`` before the decision up
to ``postroll_s`` after it are encoded as H.264/MP4 in memory and handed to ``deliver``,
which seals them. Nothing of a clip exists outside this thread's memory until it is
sealed, and no frame is kept unless an alert asks for it.

When the camera closes (``camera_closed``) the ring is wiped at once; clips still
collecting their post-roll are finished with the frames they already have. A clip that
cannot be made (no frame at all, the encoder failed, too many at once) is delivered with
its problem instead of a video, so it can be reported missing rather than awaited.

The hand-over queue drops the oldest frame when the clip thread falls behind (e.g. while
it encodes): a clip then has a gap, the face pipeline never waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2

from agent.camera.frame_source import Frame
from agent.config import ClipsSection
from agent.evidence.preroll_ring import ClipFrame, PrerollRing
from agent.evidence.video_encoder import (
    EncodedVideo,
    VideoEncoderError,
    choose_codec,
    encode_frames,
    scaled_size,
)

log = logging.getLogger(__name__)

#: Frames waiting for the clip thread; beyond it the oldest is dropped.
HANDOVER_FRAMES = 16
#: Clips collecting their post-roll at once; an alert beyond this gets a missing clip.
MAX_PENDING = 16
#: A clip whose post-roll is this late (no frames came) is finished with what it has.
STALL_GRACE_S = 1.0
_WAIT_S = 0.25


@dataclass(frozen=True)
class ClipOrder:
    alert_id: str
    deployment_id: str
    decided_mono: float


@dataclass(frozen=True)
class ClipResult:
    """A finished clip (``video``) or why there is none (``problem``)."""

    order: ClipOrder
    video: EncodedVideo | None
    start_mono: float
    end_mono: float
    problem: str = ""


@dataclass
class _Pending:
    order: ClipOrder
    deadline: float
    frames: list[ClipFrame] = field(default_factory=list)


class _Closed:
    """Queue marker: the camera closed after the frames before it."""


class ClipMaker:
    def __init__(
        self,
        section: ClipsSection,
        deliver: Callable[[ClipResult], None],
        *,
        codec: str | None = None,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.section = section
        self._deliver = deliver
        self.codec = codec or choose_codec(section.encoder)
        self._mono = mono
        self.ring = PrerollRing(section.preroll_s, section.fps)
        self._interval = 1.0 / section.fps
        self._last_kept: float | None = None
        self._queue: deque[Frame | ClipOrder | _Closed] = deque()
        self._frames_queued = 0
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._src_size: tuple[int, int] | None = None
        self._dst_size = (0, 0)
        self._stop = False
        self._thread: threading.Thread | None = None
        self.clips_made = 0
        self.clips_failed = 0
        self.frames_dropped = 0
        self.encode_s = 0.0

    # ---- called from other threads ----------------------------------------------------
    def offer(self, frame: Frame) -> None:
        """A frame from the open camera (capture thread): kept only at the clip rate."""
        last = self._last_kept
        if last is not None and 0 <= frame.t_mono - last < self._interval * 0.9:
            return
        self._last_kept = frame.t_mono
        with self._cond:
            if self._frames_queued >= HANDOVER_FRAMES:
                for i, item in enumerate(self._queue):
                    if isinstance(item, Frame):
                        del self._queue[i]
                        self._frames_queued -= 1
                        self.frames_dropped += 1
                        break
            self._queue.append(frame)
            self._frames_queued += 1
            self._cond.notify()

    def order(self, alert_id: str, deployment_id: str, decided_mono: float) -> None:
        """Make the clip of a stored alert (the alert itself is already on its way)."""
        with self._cond:
            self._queue.append(ClipOrder(alert_id, deployment_id, decided_mono))
            self._cond.notify()

    def camera_closed(self) -> None:
        """Wipe the pre-roll now; clips in progress finish with the frames they have."""
        self.ring.wipe()
        self._last_kept = None
        with self._cond:
            self._queue.append(_Closed())
            self._cond.notify()

    # ---- life cycle -----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="clip-maker", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish what is pending (with the frames it has), wipe the ring, stop."""
        self.camera_closed()
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def pending(self) -> int:
        with self._cond:
            orders = sum(isinstance(i, ClipOrder) for i in self._queue)
        return orders + len(self._pending)

    # ---- the clip thread ----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    if self._pending and self._cond.wait(_WAIT_S):
                        break
                    if self._pending:
                        break  # timed out: look for stalled clips
                    self._cond.wait()
                item = self._queue.popleft() if self._queue else None
                if isinstance(item, Frame):
                    self._frames_queued -= 1
                if item is None and self._stop:
                    break
            try:
                self._step(item)
            except Exception:
                log.exception("clip maker: step failed")
        self._finish_all("the agent stopped")
        self.ring.wipe()

    def _step(self, item: Frame | ClipOrder | _Closed | None) -> None:
        if isinstance(item, Frame):
            self._take(item)
        elif isinstance(item, ClipOrder):
            self._start_clip(item)
        elif isinstance(item, _Closed):
            self._finish_all("the camera closed")
            self.ring.wipe()
            self._last_kept = None
        now = self._mono()
        for p in [p for p in self._pending if now > p.deadline + STALL_GRACE_S]:
            self._finish(p, "no frames came after the alert")

    def _take(self, frame: Frame) -> None:
        h, w = frame.image.shape[:2]
        if self._src_size != (w, h):
            self._src_size = (w, h)
            self._dst_size = scaled_size(w, h, self.section.width)
        sw, sh = self._dst_size
        small = (
            frame.image
            if (sw, sh) == (w, h)
            else cv2.resize(frame.image, (sw, sh), interpolation=cv2.INTER_AREA)
        )
        cf = ClipFrame(frame.t_mono, small)
        self.ring.push(cf)
        for p in list(self._pending):
            p.frames.append(cf)
            if cf.t_mono >= p.deadline:
                self._finish(p, "")

    def _start_clip(self, order: ClipOrder) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._deliver_safely(
                ClipResult(
                    order, None, order.decided_mono, order.decided_mono, "too many clips at once"
                )
            )
            return
        p = _Pending(order, order.decided_mono + self.section.postroll_s)
        p.frames = self.ring.since(order.decided_mono - self.section.preroll_s)
        self._pending.append(p)
        if p.frames and p.frames[-1].t_mono >= p.deadline:
            self._finish(p, "")

    def _finish_all(self, why: str) -> None:
        for p in list(self._pending):
            self._finish(p, f"{why} before any frame of the clip" if not p.frames else "")

    def _finish(self, p: _Pending, problem: str) -> None:
        self._pending.remove(p)
        frames = [f for f in p.frames if f.t_mono <= p.deadline]
        # Frames of one clip share a size unless the camera changed mode meanwhile.
        frames = [f for f in frames if f.image.shape == frames[-1].image.shape] if frames else []
        p.frames = []
        if not frames:
            result = ClipResult(
                p.order,
                None,
                p.order.decided_mono,
                p.order.decided_mono,
                problem or "no frames for the clip",
            )
        else:
            started = time.monotonic()
            try:
                video = encode_frames([f.image for f in frames], self.section.fps, self.codec)
            except VideoEncoderError as exc:
                result = ClipResult(p.order, None, frames[0].t_mono, frames[-1].t_mono, str(exc))
            else:
                result = ClipResult(p.order, video, frames[0].t_mono, frames[-1].t_mono)
            finally:
                self.encode_s += time.monotonic() - started
            del frames
        if result.video is None:
            self.clips_failed += 1
        else:
            self.clips_made += 1
        self._deliver_safely(result)

    def _deliver_safely(self, result: ClipResult) -> None:
        try:
            self._deliver(result)
        except Exception:
            log.exception(
                "clip maker: the clip of alert %s was not delivered", result.order.alert_id
            )
