"""The clip maker's load on the face pipeline, for ``lfr-agent bench``: every frame is
offered to a real ``ClipMaker`` (RAM pre-roll, downscaling on its own thread) and every
match orders a clip, which is encoded (H.264) and sealed as on the camera, beside the
pipeline. Nothing is written: the sealed clips are only counted.
"""

from __future__ import annotations

import secrets
import threading

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.camera.frame_source import Frame
from agent.config import ClipsSection
from agent.evidence.clip_maker import ClipMaker, ClipResult
from agent.trust.sealed_media import seal_media


class EvidenceLoad:
    def __init__(self, section: ClipsSection) -> None:
        self._device = Ed25519PrivateKey.generate()
        self._hub = X25519PrivateKey.generate().public_key()
        self._lock = threading.Lock()
        self.clips = 0
        self.missing = 0
        self.frames = 0
        self.bytes = 0
        self.maker = ClipMaker(section, self._done)
        self.maker.start()

    def offer(self, frame: Frame) -> None:
        self.maker.offer(frame)

    def alert(self, decided_mono: float) -> None:
        self.maker.order(secrets.token_hex(16), "bench", decided_mono)

    def _done(self, r: ClipResult) -> None:
        if r.video is None:
            with self._lock:
                self.missing += 1
            return
        sealed = seal_media(
            "clip",
            r.video.mp4,
            r.video.info,
            device="bench",
            deployment="bench",
            alert_id=r.order.alert_id,
            start=0.0,
            end=1.0,
            device_key=self._device,
            hub_key=self._hub,
        )
        with self._lock:
            self.clips += 1
            self.frames += r.video.info.frames
            self.bytes += len(sealed.box)

    def close(self) -> dict[str, float]:
        """Finish pending clips (outside any timed section) and return what was made."""
        self.maker.stop()
        return {
            "clips": self.clips,
            "clips_missing": self.missing,
            "clip_frames": self.frames,
            "clip_bytes_sealed": self.bytes,
            "encode_s": round(self.maker.encode_s, 3),
            "frames_dropped_by_clip_thread": self.maker.frames_dropped,
        }
