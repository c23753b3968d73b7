"""Optional CCTV recording: while the camera is open for a deployment whose signed
activation turned recording on, frames become H.264 segments, each sealed to the hub
evidence key the moment it is complete and only then written (to the segment ring).

The plaintext of a segment exists only in this thread's memory while it is being
encoded; the device cannot read a stored segment back. Frames reach the recorder from
the capture thread through a small queue that drops the oldest frame when the recorder
falls behind, so recording never slows the face pipeline. When the disk is too full
(``RecordingDiskFull``) recording stops for the rest of the deployment (audited
``recording.stopped``); alerts and clips carry on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2

from agent.camera.frame_source import Frame
from agent.config import RecordingSection
from agent.evidence.sealed_media_file import MediaFileError
from agent.evidence.segment_ring import RecordingDiskFull, SegmentRing
from agent.evidence.video_encoder import (
    EncodedVideo,
    Mp4Writer,
    VideoEncoderError,
    choose_codec,
    scaled_size,
)
from agent.trust.sealed_media import SealedMedia

log = logging.getLogger(__name__)

AuditFn = Callable[[str, dict[str, object]], None]
#: (video, deployment id, first frame, last frame as Unix seconds) → the sealed segment.
SealFn = Callable[[EncodedVideo, str, float, float], SealedMedia]
HANDOVER_FRAMES = 8


@dataclass
class RecordingTotals:
    """What one deployment's recording sealed (for its report)."""

    segments: int = 0
    bytes: int = 0
    stopped: str = ""  # why recording stopped before the deployment ended ("" if it did not)


class _End:
    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.done = threading.Event()


class SegmentRecorder:
    def __init__(
        self,
        section: RecordingSection,
        ring: SegmentRing,
        seal: SealFn,
        *,
        audit: AuditFn,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        codec: str | None = None,
    ) -> None:
        self.section = section
        self.ring = ring
        self._seal = seal
        self._audit = audit
        self._wall = wall
        self._mono = mono
        self.codec = codec or choose_codec(section.encoder)
        self._interval = 1.0 / section.fps
        self._cond = threading.Condition()
        self._queue: deque[Frame | _End] = deque()
        self._frames_queued = 0
        self._deployment: str | None = None
        self._last_kept: float | None = None
        self._writer: Mp4Writer | None = None
        self._seg_start_mono = 0.0
        self._seg_last_mono = 0.0
        self._offset = 0.0
        self._stop = False
        self._thread: threading.Thread | None = None
        self.totals = RecordingTotals()
        self.frames_dropped = 0

    # ---- control (daemon threads) ------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._deployment is not None

    def begin(self, deployment_id: str) -> None:
        """Record this deployment's frames from now on."""
        with self._cond:
            self._deployment = deployment_id
            self._last_kept = None
            self.totals = RecordingTotals()
        self._audit(
            "recording.started",
            {"deployment_id": deployment_id, "segment_s": self.section.segment_s},
        )

    def end(self, reason: str, timeout_s: float = 30.0) -> RecordingTotals:
        """Stop recording: the segment in progress is sealed and stored first."""
        marker = _End(reason)
        with self._cond:
            self._queue.append(marker)
            self._cond.notify()
        if self._thread is not None:
            marker.done.wait(timeout_s)
        else:
            self._drain()
        return self.totals

    def offer(self, frame: Frame) -> None:
        """A frame from the open camera (capture thread); kept at the recording rate."""
        if self._deployment is None:
            return
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

    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._deployment is not None:
            self.end("shutdown")
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    # ---- the recorder thread -----------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue:
                    return
                item = self._queue.popleft()
                if isinstance(item, Frame):
                    self._frames_queued -= 1
            self._handle(item)

    def _drain(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    return
                item = self._queue.popleft()
                if isinstance(item, Frame):
                    self._frames_queued -= 1
            self._handle(item)

    def _handle(self, item: Frame | _End) -> None:
        try:
            if isinstance(item, _End):
                self._close_segment()
                if self._deployment is not None:
                    self._audit(
                        "recording.ended",
                        {
                            "deployment_id": self._deployment,
                            "reason": item.reason,
                            "segments": self.totals.segments,
                            "bytes": self.totals.bytes,
                        },
                    )
                self._deployment = None
                item.done.set()
            elif self._deployment is not None:
                self._record(item)
        except Exception:
            log.exception("recorder: step failed; recording stops for this deployment")
            self._abandon("internal-error")
            if isinstance(item, _End):
                item.done.set()

    def _record(self, frame: Frame) -> None:
        h, w = frame.image.shape[:2]
        sw, sh = scaled_size(w, h, self.section.width)
        if self._writer is not None and (self._writer.width, self._writer.height) != (sw, sh):
            self._close_segment()  # the camera changed mode: a new segment
        if self._writer is None:
            self._writer = Mp4Writer(sw, sh, self.section.fps, self.codec)
            self._seg_start_mono = frame.t_mono
            self._offset = self._wall() - self._mono()
        image = (
            frame.image
            if (sw, sh) == (w, h)
            else cv2.resize(frame.image, (sw, sh), interpolation=cv2.INTER_AREA)
        )
        try:
            self._writer.add(image)
        except VideoEncoderError as exc:
            log.error("recorder: %s", exc)
            self._abandon("encoder-failed")
            return
        self._seg_last_mono = frame.t_mono
        if frame.t_mono - self._seg_start_mono >= self.section.segment_s:
            self._close_segment()

    def _close_segment(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None or self._deployment is None:
            if writer is not None:
                writer.abandon()
            return
        try:
            video = writer.finish()
        except VideoEncoderError as exc:
            log.error("recorder: segment lost: %s", exc)
            self._audit(
                "recording.segment_lost",
                {"deployment_id": self._deployment, "reason": str(exc)[:200]},
            )
            return
        start = self._seg_start_mono + self._offset
        end = self._seg_last_mono + self._offset
        sealed = self._seal(video, self._deployment, start, end)
        del video
        try:
            entry = self.ring.add(sealed)
        except RecordingDiskFull as exc:
            log.error("recording stopped, alerts continue: %s", exc)
            self._abandon("disk-full", str(exc))
            return
        except MediaFileError as exc:
            log.error("recording stopped, alerts continue: %s", exc)
            self._abandon("write-failed", str(exc))
            return
        self.totals.segments += 1
        self.totals.bytes += entry.size
        self._audit(
            "recording.segment_sealed",
            {
                "deployment_id": self._deployment,
                "media_id": entry.media_id,
                "start": round(entry.start, 3),
                "end": round(entry.end, 3),
                "bytes": entry.size,
            },
        )

    def _abandon(self, reason: str, detail: str = "") -> None:
        """Stop recording for the rest of the deployment (alerts are not affected)."""
        if self._writer is not None:
            self._writer.abandon()
            self._writer = None
        if self._deployment is not None:
            self.totals.stopped = reason
            self._audit(
                "recording.stopped",
                {"deployment_id": self._deployment, "reason": reason, "detail": detail[:200]},
            )
        self._deployment = None
