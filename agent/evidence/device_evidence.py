"""Everything the camera does with video, wired together for the daemon.

    capture thread ─ offer(frame) ─► ClipMaker (RAM pre-roll)   ─► seal to the alert key ─► ClipOutbox
                                 └─► SegmentRecorder (if on)    ─► seal to the evidence key ─► SegmentRing
    alert stored ─ alert_stored() ─► ClipOutbox.expect + ClipMaker.order
    camera closed ─ camera_closed() ─► pre-roll wiped
    hub: evidence-request ─► verified ─► MediaSender ◄─ ClipOutbox, SegmentRing ─► clip / evidence topics

The daemon calls only the methods of ``DeviceEvidence``. Recording runs only for a
deployment whose signed activation has ``recording`` on, and only while the camera is
open for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.camera.frame_source import Frame
from agent.config import AgentConfig
from agent.errors import LfrError
from agent.evidence.clip_maker import ClipMaker, ClipResult
from agent.evidence.clip_outbox import ClipOutbox, ClipOutboxFull
from agent.evidence.media_sender import MediaSender
from agent.evidence.sealed_media_file import MediaFileError
from agent.evidence.segment_recorder import RecordingTotals, SegmentRecorder
from agent.evidence.segment_ring import SegmentRing
from agent.evidence.video_encoder import EncodedVideo
from agent.protocol.topics import evidence_request_topic
from agent.transport.mqtt_link import MqttLink
from agent.trust.evidence_request import EvidenceRequestRejected, verify_evidence_request
from agent.trust.hub_trust_store import HubTrustStore
from agent.trust.key_certificates import CertificateError
from agent.trust.sealed_media import (
    MediaManifest,
    SealedMedia,
    missing_clip_notice,
    open_manifest,
    seal_media,
)
from agent.trust.signed_document import key_id
from agent.trust.system_clock import Clock

log = logging.getLogger(__name__)

AuditFn = Callable[..., None]  # AuditLog.append(event, **fields)
#: Retention is applied this often (the clip outbox and the segment ring are indexed in memory,
#: so a pass costs next to nothing).
PURGE_EVERY_S = 60.0
CLIPS_DIR = "clips"
RECORDINGS_DIR = "recordings"


class DeviceEvidence:
    def __init__(
        self,
        cfg: AgentConfig,
        *,
        link: MqttLink,
        device_key: Ed25519PrivateKey,
        trust: HubTrustStore,
        alert_key: X25519PublicKey,
        clock: Clock,
        audit: AuditFn,
        alerts_waiting: Callable[[], bool],
        alert_pending: Callable[[str], bool],
    ) -> None:
        self.cfg = cfg
        self.device_id = cfg.device.id
        self._device_key = device_key
        self._device_pub = device_key.public_key()
        self.trust = trust
        self._alert_key = alert_key
        self.clock = clock
        self._audit_append = audit
        self._last_purge: float | None = None
        state = cfg.paths.state_dir
        self.clip_outbox = ClipOutbox(
            state / CLIPS_DIR,
            max_bytes=cfg.clips.max_mb * 2**20,
            retention_s=cfg.outbox.retention_days * 86400.0,
            read_manifest=self._own_manifest,
            audit=self._audit,
            clock=clock.wall,
        )
        self.ring = SegmentRing(
            state / RECORDINGS_DIR,
            max_bytes=cfg.recording.max_mb * 2**20,
            reserve_bytes=cfg.recording.reserve_mb * 2**20,
            retention_s=cfg.recording.retention_days * 86400.0,
            audit=self._audit,
            clock=clock.wall,
        )
        self.clips: ClipMaker | None = (
            ClipMaker(cfg.clips, self._clip_done) if cfg.clips.enabled else None
        )
        self.recorder = SegmentRecorder(
            cfg.recording,
            self.ring,
            self._seal_segment,
            audit=self._audit,
            wall=clock.wall,
            mono=time.monotonic,
        )
        self._evidence_key: X25519PublicKey | None = None
        self.sender = MediaSender(
            link,
            device_id=self.device_id,
            clips=self.clip_outbox,
            segments=self.ring,
            alerts_waiting=alerts_waiting,
            alert_pending=alert_pending,
            audit=self._audit,
            resend_after_s=cfg.outbox.resend_after_s,
        )
        link.subscribe(evidence_request_topic(self.device_id), self._on_request)
        self.requests_refused = 0

    def _audit(self, event: str, fields: dict[str, object]) -> None:
        self._audit_append(event, **fields)

    def _own_manifest(self, data: bytes) -> MediaManifest:
        return open_manifest(data, sender=self.device_id, device_key=self._device_pub)

    # ---- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Report clips a previous run promised but never made, then start the threads."""
        for exp in self.clip_outbox.left_over:
            self._notice(
                exp.alert_id,
                exp.deployment_id,
                exp.at,
                "the agent stopped before the clip was encoded",
            )
        self.clip_outbox.left_over.clear()
        if self.clips is not None:
            self.clips.start()
        self.recorder.start()
        self.sender.start()

    def stop(self) -> None:
        if self.clips is not None:
            self.clips.stop()
        self.recorder.stop()
        self.sender.stop()

    def tick(self) -> None:
        """Retention for the clip outbox and the segment ring (every few minutes)."""
        now = time.monotonic()
        if self._last_purge is not None and now - self._last_purge < PURGE_EVERY_S:
            return
        self._last_purge = now
        self.purge_expired()

    def purge_expired(self) -> int:
        return self.clip_outbox.purge_expired() + self.ring.purge_expired()

    # ---- frames and alerts -------------------------------------------------------------
    def offer(self, frame: Frame) -> None:
        """Every frame from the open camera (capture thread): cheap, never blocks."""
        if self.clips is not None:
            self.clips.offer(frame)
        self.recorder.offer(frame)

    def camera_closed(self) -> None:
        if self.clips is not None:
            self.clips.camera_closed()

    def alert_stored(self, alert_id: str, deployment_id: str, decided_mono: float) -> None:
        """The alert is durable: promise its clip (durably), then collect it."""
        if self.clips is None:
            return
        try:
            self.clip_outbox.expect(alert_id, deployment_id, self.clock.wall())
        except MediaFileError as exc:
            log.error("clip of alert %s not made: %s", alert_id, exc)
            return
        self.clips.order(alert_id, deployment_id, decided_mono)

    def _clip_done(self, result: ClipResult) -> None:
        o = result.order
        offset = self.clock.wall() - time.monotonic()
        if result.video is None:
            self._notice(o.alert_id, o.deployment_id, o.decided_mono + offset, result.problem)
            return
        sealed = seal_media(
            "clip",
            result.video.mp4,
            result.video.info,
            device=self.device_id,
            deployment=o.deployment_id,
            alert_id=o.alert_id,
            start=max(0.0, result.start_mono + offset),
            end=max(0.0, result.end_mono + offset),
            device_key=self._device_key,
            hub_key=self._alert_key,
        )
        try:
            self.clip_outbox.add(sealed)
        except ClipOutboxFull as exc:
            self._notice(o.alert_id, o.deployment_id, o.decided_mono + offset, str(exc))
            return
        self._audit(
            "clip.sealed",
            {
                "alert_id": o.alert_id,
                "media_id": sealed.manifest.media_id,
                "frames": result.video.info.frames,
                "bytes": len(sealed.box),
            },
        )
        self.sender.wake()

    def _notice(self, alert_id: str, deployment_id: str, at: float, reason: str) -> None:
        manifest, data = missing_clip_notice(
            device=self.device_id,
            deployment=deployment_id,
            alert_id=alert_id,
            reason=reason,
            device_key=self._device_key,
            hub_key_id=key_id(self._alert_key),
            at=max(0.0, at),
        )
        self.clip_outbox.add_notice(manifest, data)
        self._audit("clip.missing", {"alert_id": alert_id, "reason": reason[:200]})
        self.sender.wake()

    # ---- recording ------------------------------------------------------------------------
    def recording_problem(self) -> str | None:
        """Why recording cannot run here now (None when it can)."""
        try:
            self.trust.evidence_key(self.clock.wall())
        except CertificateError as exc:
            return f"recording asked for, but {exc}"
        return None

    def deployment_started(self, deployment_id: str, recording: bool) -> None:
        if not recording:
            return
        self._evidence_key = self.trust.evidence_key(self.clock.wall())
        self.recorder.begin(deployment_id)

    def deployment_ended(self, reason: str) -> RecordingTotals | None:
        """Seal the segment in progress and return the deployment's totals (None if off)."""
        if not self.recorder.recording and not self.recorder.totals.stopped:
            return None
        return self.recorder.end(reason)

    def _seal_segment(
        self, video: EncodedVideo, deployment_id: str, start: float, end: float
    ) -> SealedMedia:
        key = self._evidence_key
        if key is None:
            raise LfrError("recording: no evidence key")
        return seal_media(
            "segment",
            video.mp4,
            video.info,
            device=self.device_id,
            deployment=deployment_id,
            alert_id="",
            start=max(0.0, start),
            end=max(0.0, end),
            device_key=self._device_key,
            hub_key=key,
        )

    # ---- the hub's requests ------------------------------------------------------------------
    def _on_request(self, topic: str, payload: bytes) -> None:
        try:
            req = verify_evidence_request(
                payload,
                trust=self.trust,
                device_id=self.device_id,
                now=self.clock.wall(),
                tolerance_s=self.cfg.activation.clock_tolerance_s,
            )
        except EvidenceRequestRejected as exc:
            self.requests_refused += 1
            log.warning("evidence request refused: %s", exc)
            self._audit("evidence.request_refused", {"detail": str(exc)[:200]})
            return
        segments = self.ring.in_range(req.start, req.end)
        queued = self.sender.request_segments([s.media_id for s in segments], req.request_id)
        self._audit(
            "evidence.requested",
            {
                "request_id": req.request_id,
                "signer": req.signer,
                "from": req.start,
                "to": req.end,
                "segments": len(segments),
                "queued": queued,
            },
        )
        log.info(
            "evidence request %s: %d segments in range, %d queued",
            req.request_id[:12],
            len(segments),
            queued,
        )


def folders(state_dir: Path) -> tuple[Path, Path]:
    """The clip outbox and recording ring folders under a state directory."""
    return state_dir / CLIPS_DIR, state_dir / RECORDINGS_DIR
