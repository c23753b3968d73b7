"""Receiving clips and recording segments at the hub: chunk by chunk, checked, joined,
verified, decrypted, decoded, stored once, then acknowledged.

``MediaReceiver.receive`` decides one chunk message and never raises for bad input. Each
chunk's manifest must verify under the sender's enrolled device key and name that
device; its kind must match the topic (clips on ``…/clip``, segments on ``…/evidence``);
its size must be exactly its place in the box. Chunks are kept (staged) until all have
arrived; then the box is joined and must match the length and SHA-256 the signed
manifest names, decrypt under the hub key (the alert key for clips, the evidence key for
segments) and decode as video (PyAV). Only then is it stored, and only then does the
device get its receipt (with the secret sealed inside, as proof). Anything that fails is
dropped with its staged chunks and answered ``refused``: a corrupt or partial clip is
never stored, so never shown.

Every copy of a transfer's last chunk is answered with what is still missing
(``partial``), which is how a camera resumes an interrupted transfer. A clip is stored
with its alert (same device and deployment), so the alert's retention purge deletes it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.errors import UsageError
from agent.hub.store.alert_store import AlertStore, AlertStoreError
from agent.hub.store.media_store import MediaStore, MediaStoreError
from agent.protocol.media_transfer import (
    CHUNK_BYTES,
    TOPIC_KIND,
    MediaAck,
    MediaTransferError,
    chunk_count,
    decode_chunk,
    encode_media_ack,
)
from agent.protocol.topics import (
    ALL_CLIPS,
    ALL_EVIDENCE,
    TopicError,
    media_ack_topic,
    parse_topic,
    shared_subscription,
)
from agent.transport.mqtt_link import MqttLink
from agent.trust.sealed_media import (
    MediaManifest,
    OpenedMedia,
    SealedMediaError,
    open_manifest,
    open_media,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaReceipt:
    """What became of one chunk message, and the answer for the device (if any)."""

    outcome: str  # "staged", "stored", "duplicate", "noted", "rejected"
    topic: str
    device_id: str | None = None
    manifest: MediaManifest | None = None
    ack: MediaAck | None = None
    reason: str = ""


@dataclass
class MediaStats:
    chunks: int = 0
    stored: int = 0
    duplicates: int = 0
    noted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def decoded_frames(mp4: bytes) -> int:
    """How many frames an MP4 decodes to (PyAV); raises ValueError if it does not decode."""
    import av  # the hub's only use of FFmpeg: checking what it stores plays

    try:
        with av.open(io.BytesIO(mp4), "r") as c:
            n = 0
            for _ in c.decode(video=0):
                n += 1
            return n
    except (av.FFmpegError, IndexError, StopIteration) as exc:
        raise ValueError(f"video does not decode ({exc})") from exc


class MediaReceiver:
    def __init__(
        self,
        alerts: AlertStore,
        media: MediaStore,
        alert_key: X25519PrivateKey,
        evidence_key: X25519PrivateKey | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.alerts = alerts
        self.media = media
        self.keys = {"clip": alert_key, "segment": evidence_key}
        self.clock = clock
        self.stats = MediaStats()
        self._lock = threading.Lock()

    def _reject(
        self,
        topic: str,
        reason: str,
        device: str | None = None,
        m: MediaManifest | None = None,
        answer: bool = False,
    ) -> MediaReceipt:
        log.warning("media rejected on %r: %s", topic[:120], reason)
        with self._lock:
            self.stats.rejected += 1
            self.stats.reasons[reason.split(":")[0][:60]] += 1
        ack = MediaAck(m.media_id, m.kind, "refused", reason=reason) if m and answer else None
        return MediaReceipt("rejected", topic, device, m, ack, reason)

    def receive(self, topic: str, payload: bytes) -> MediaReceipt:
        with self._lock:
            self.stats.chunks += 1
        try:
            device, tkind = parse_topic(topic)
        except TopicError as exc:
            return self._reject(topic, str(exc))
        if tkind not in TOPIC_KIND.values():
            return self._reject(topic, f"topic kind {tkind!r} does not carry media", device)
        try:
            chunk = decode_chunk(payload)
        except MediaTransferError as exc:
            return self._reject(topic, str(exc), device)
        key = self.alerts.device_key(device)
        if key is None:
            return self._reject(topic, f"device {device!r} is not enrolled", device)
        try:
            m = open_manifest(chunk.manifest, sender=device, device_key=key)
        except SealedMediaError as exc:
            return self._reject(topic, str(exc), device)
        if TOPIC_KIND[m.kind] != tkind:
            return self._reject(topic, f"a {m.kind} does not travel on …/{tkind}", device)
        if m.missing:
            return self._notice(topic, device, m)
        done = (
            self.media.clip_secret(m.media_id)
            if m.kind == "clip"
            else self.media.segment_secret(m.media_id)
        )
        if done is not None:
            with self._lock:
                self.stats.duplicates += 1
            return MediaReceipt(
                "duplicate", topic, device, m, MediaAck(m.media_id, m.kind, "complete", done)
            )
        if self.keys[m.kind] is None:
            return self._reject(
                topic, "media: this hub worker holds no evidence key", device, m, True
            )
        count = chunk_count(m.box_len)
        expected = CHUNK_BYTES if chunk.index < count - 1 else m.box_len - CHUNK_BYTES * (count - 1)
        if chunk.count != count or len(chunk.data) != expected:
            return self._reject(topic, "chunk: count or size does not match the manifest", device)
        if m.kind == "clip":
            _, problem = self._alert_row(m)
            if problem:
                return self._reject(topic, problem, device, m, True)
        missing = self.media.stage_chunk(m, chunk.manifest, count, chunk.index, chunk.data)
        if missing:
            ack = (
                MediaAck(m.media_id, m.kind, "partial", missing=tuple(missing))
                if chunk.index == count - 1
                else None
            )
            return MediaReceipt("staged", topic, device, m, ack)
        return self._complete(topic, device, m, chunk.manifest)

    def _alert_row(self, m: MediaManifest) -> tuple[int, str]:
        """The hub row id of the clip's alert (the same camera's alert id), or why none."""
        try:
            row = self.alerts.get(m.alert_id, device_id=m.device)
        except (AlertStoreError, UsageError):
            if self.alerts.is_purged(m.alert_id, device_id=m.device):
                return 0, "clip: its alert was purged by retention"
            return 0, "clip: its alert is not stored here (yet)"
        if row.deployment_id != m.deployment:
            return 0, "clip: its alert belongs to another deployment"
        return row.row_id, ""

    def _notice(self, topic: str, device: str, m: MediaManifest) -> MediaReceipt:
        row_id, problem = self._alert_row(m)
        if problem and "purged" not in problem:
            return self._reject(topic, problem, device, m, True)
        if not problem:
            self.media.note_missing_clip(row_id, m)
        with self._lock:
            self.stats.noted += 1
        log.info("alert %s: the camera reports its clip missing (%s)", m.alert_id, m.reason[:120])
        return MediaReceipt("noted", topic, device, m, MediaAck(m.media_id, m.kind, "noted"))

    def _complete(self, topic: str, device: str, m: MediaManifest, manifest: bytes) -> MediaReceipt:
        box = self.media.staged_box(m.media_id)
        key = self.keys[m.kind]
        assert key is not None
        try:
            opened: OpenedMedia = open_media(m, box, key)
            frames = decoded_frames(opened.mp4)
            if frames != opened.info.frames:
                raise ValueError(f"video decodes to {frames} frames, {opened.info.frames} sealed")
        except (SealedMediaError, ValueError) as exc:
            # Never stored, never shown: the camera is told, the staging is dropped.
            self.media.drop_staged(m.media_id)
            return self._reject(topic, f"{m.kind}: {exc}", device, m, True)
        if m.kind == "clip":
            row_id, problem = self._alert_row(m)
            if problem:
                self.media.drop_staged(m.media_id)
                return self._reject(topic, problem, device, m, True)
            try:
                self.media.store_clip(row_id, opened, hashlib.sha256(opened.mp4).hexdigest())
            except MediaStoreError as exc:
                # E.g. the alert was purged meanwhile (its row is gone): nothing is shown.
                self.media.drop_staged(m.media_id)
                return self._reject(topic, f"clip: {exc}", device, m, True)
        else:
            self.media.store_segment(opened, manifest, box)
        with self._lock:
            self.stats.stored += 1
        log.info("%s %s from %s stored (%d frames)", m.kind, m.media_id, device, opened.info.frames)
        return MediaReceipt(
            "stored", topic, device, m, MediaAck(m.media_id, m.kind, "complete", opened.ack_secret)
        )


class HubMediaWorker:
    """Broker subscription (clips and segments of every device) → receiver → answers."""

    def __init__(
        self,
        link: MqttLink,
        receiver: MediaReceiver,
        *,
        share_group: str | None = None,
        on_receipt: Callable[[MediaReceipt], None] | None = None,
    ) -> None:
        self.link = link
        self.receiver = receiver
        self.on_receipt = on_receipt
        for topic_filter in (ALL_CLIPS, ALL_EVIDENCE):
            sub = shared_subscription(share_group, topic_filter) if share_group else topic_filter
            link.subscribe(sub, self._on_message)

    def _on_message(self, topic: str, payload: bytes) -> None:
        receipt = self.receiver.receive(topic, payload)
        if receipt.ack is not None and receipt.device_id is not None:
            self.link.publish(media_ack_topic(receipt.device_id), encode_media_ack([receipt.ack]))
        if self.on_receipt is not None:
            self.on_receipt(receipt)
