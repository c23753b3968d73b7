"""Sending sealed clips and requested segments to the hub: chunked, acknowledged,
resumable, and always behind the alerts.

Order and priority. Nothing is sent while an alert waits to be handed to the broker
(``alerts_waiting``), and a clip is sent only once the hub has acknowledged its alert (it
is no longer in the alert outbox), so the alert always arrives first and never queues
behind video on the connection. At most ``WINDOW`` chunks (of at most 256 KiB) wait for
the broker's PUBACK at any time, so an alert raised meanwhile waits behind half a
megabyte at worst. Transfers go one at a time: clips (oldest first), then segments the
hub asked for.

Resuming. A transfer starts with its last chunk alone (a probe). The hub answers every
copy of a last chunk with what it still lacks (``partial``), or with its receipt
(``complete``, carrying the secret sealed inside, which proves it decrypted and stored
the object). So after a broker restart, a lost connection, an agent restart or a hub
restart, only the missing chunks travel again. Without an answer the probe is repeated
every ``resend_after_s``.

Receipts delete a clip from the clip outbox (only with the right secret); a segment
stays in the ring (its retention is the ring's) and the receipt is audited.
"""

from __future__ import annotations

import functools
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.evidence.clip_outbox import ClipOutbox
from agent.evidence.segment_ring import SegmentRing
from agent.protocol.media_transfer import (
    MediaAck,
    MediaTransferError,
    chunk_count,
    chunk_slice,
    decode_media_ack,
    encode_chunk,
)
from agent.protocol.topics import clip_topic, evidence_topic, media_ack_topic
from agent.transport.mqtt_link import MqttLink, MqttLinkError, PublishResult

log = logging.getLogger(__name__)

AuditFn = Callable[[str, dict[str, object]], None]
#: Chunks awaiting PUBACK at once.
WINDOW = 2
#: How long a fresh transfer waits for the hub's answer to its probe before sending all.
PROBE_WAIT_S = 3.0
#: A transfer the hub refused is tried again after this long.
REFUSED_RETRY_S = 600.0
TICK_S = 0.2


@dataclass
class _Transfer:
    media_id: str
    kind: str  # "clip" or "segment"
    alert_id: str
    manifest: bytes
    box: bytes = field(repr=False)
    count: int
    missing: set[int]
    in_flight: set[int] = field(default_factory=set)
    last_sent: float | None = None
    answered: bool = False
    next_try: float = 0.0


class MediaSender:
    def __init__(
        self,
        link: MqttLink,
        *,
        device_id: str,
        clips: ClipOutbox,
        segments: SegmentRing | None,
        alerts_waiting: Callable[[], bool],
        alert_pending: Callable[[str], bool],
        audit: AuditFn,
        resend_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.device_id = device_id
        self.clips = clips
        self.segments = segments
        self._alerts_waiting = alerts_waiting
        self._alert_pending = alert_pending
        self._audit = audit
        self.resend_after_s = resend_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: _Transfer | None = None
        self._requested: list[tuple[str, str]] = []  # (segment media id, request id)
        self._deferred: dict[str, float] = {}  # media id → when to try again
        self._topics = {"clip": clip_topic(device_id), "segment": evidence_topic(device_id)}
        self.chunks_sent = 0
        self.clips_delivered = 0
        self.segments_delivered = 0
        self.bad_acks = 0
        link.subscribe(media_ack_topic(device_id), self._on_ack)
        link.add_connect_listener(self._on_connected)

    # ---- requests --------------------------------------------------------------------
    def request_segments(self, media_ids: list[str], request_id: str) -> int:
        """Queue segments the hub asked for; returns how many were newly queued."""
        with self._lock:
            queued = {m for m, _ in self._requested}
            if self._current is not None:
                queued.add(self._current.media_id)
            new = [(m, request_id) for m in media_ids if m not in queued]
            self._requested.extend(new)
        self._wake.set()
        return len(new)

    @property
    def queued_segments(self) -> int:
        with self._lock:
            return len(self._requested)

    def wake(self) -> None:
        self._wake.set()

    # ---- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._pump, name="media-sender", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def idle(self) -> bool:
        """Nothing being sent and nothing waiting (for tests and shutdown)."""
        with self._lock:
            return self._current is None and not self._requested and len(self.clips) == 0

    # ---- pump ----------------------------------------------------------------------------
    def _pump(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(TICK_S)
            self._wake.clear()
            try:
                self.step()
            except Exception:
                log.exception("media sender: step failed; retrying")

    def step(self) -> int:
        """Send what is due now; returns how many chunks were handed to the broker."""
        if not self.link.connected or self._alerts_waiting():
            return 0
        with self._lock:
            t = self._current or self._next_transfer()
            if t is None:
                return 0
            self._current = t
        now = self._clock()
        if now < t.next_try:
            return 0
        if not t.answered:
            if t.last_sent is None or now - t.last_sent >= self.resend_after_s:
                return self._send(t, [max(t.count - 1, 0)])
            if now - t.last_sent < PROBE_WAIT_S:
                return 0
            # No answer to the probe: the hub may be slow or away; send everything.
            t.answered = True
        with self._lock:
            room = WINDOW - len(t.in_flight)
            due = sorted(t.missing - t.in_flight)[: max(room, 0)]
        if due:
            return self._send(t, due)
        idle_since = t.last_sent if t.last_sent is not None else now
        if not t.missing and not t.in_flight and now - idle_since >= self.resend_after_s:
            # All sent and no receipt came: ask again with the last chunk.
            return self._send(t, [max(t.count - 1, 0)])
        return 0

    def _next_transfer(self) -> _Transfer | None:
        now = self._clock()
        for entry in self.clips.pending():
            m = entry.manifest
            if self._deferred.get(m.media_id, 0.0) > now:
                continue
            if self._alert_pending(m.alert_id):
                continue  # the alert goes first
            f = self.clips.read(m.media_id)
            if f is None:
                continue
            return self._transfer(m.media_id, "clip", m.alert_id, f.manifest, f.box)
        while self._requested and self.segments is not None:
            media_id, _ = self._requested[0]
            if self._deferred.get(media_id, 0.0) > now:
                self._requested.append(self._requested.pop(0))
                return None
            f = self.segments.read(media_id)
            if f is None:
                self._requested.pop(0)  # deleted (retention) since it was asked for
                continue
            return self._transfer(media_id, "segment", "", f.manifest, f.box)
        return None

    @staticmethod
    def _transfer(
        media_id: str, kind: str, alert_id: str, manifest: bytes, box: bytes
    ) -> _Transfer:
        count = chunk_count(len(box))
        return _Transfer(media_id, kind, alert_id, manifest, box, count, set(range(count)))

    def _send(self, t: _Transfer, indexes: list[int]) -> int:
        sent = 0
        for i in indexes:
            if t.count == 0:
                data = b""
            else:
                a, b = chunk_slice(len(t.box), i)
                data = t.box[a:b]
            payload = encode_chunk(t.manifest, i, t.count, data)
            with self._lock:
                t.in_flight.add(i)
            t.last_sent = self._clock()
            try:
                self.link.publish(
                    self._topics[t.kind],
                    payload,
                    on_result=functools.partial(self._on_result, t, i),
                )
            except MqttLinkError as exc:
                log.warning("media sender: %s", exc)
                with self._lock:
                    t.in_flight.discard(i)
                break
            sent += 1
        self.chunks_sent += sent
        return sent

    # ---- callbacks (paho thread) ---------------------------------------------------------
    def _on_result(self, t: _Transfer, index: int, result: PublishResult) -> None:
        with self._lock:
            t.in_flight.discard(index)
            if result.ok:
                t.missing.discard(index)
        if not result.ok:
            log.error("media %s chunk %d: broker refused it (%s)", t.media_id, index, result.reason)
        self._wake.set()

    def _on_connected(self) -> None:
        with self._lock:
            t = self._current
            if t is not None:
                # What was in flight on the old connection may be lost; ask the hub.
                t.in_flight.clear()
                t.answered = False
                t.last_sent = None
        self._wake.set()

    def _on_ack(self, topic: str, payload: bytes) -> None:
        try:
            acks = decode_media_ack(payload)
        except MediaTransferError:
            self.bad_acks += 1
            log.warning("media sender: malformed media acknowledgement ignored")
            return
        for ack in acks:
            self._apply(ack)
        self._wake.set()

    def _apply(self, ack: MediaAck) -> None:
        with self._lock:
            t = self._current if self._current and self._current.media_id == ack.media_id else None
        if ack.state == "partial":
            if t is not None:
                with self._lock:
                    t.answered = True
                    t.missing = {i for i in ack.missing if i < t.count} - t.in_flight
            return
        if ack.state == "refused":
            log.error("media %s: the hub refused it: %s", ack.media_id, ack.reason[:200])
            self._audit(
                "media.refused",
                {"media_id": ack.media_id, "kind": ack.kind, "reason": ack.reason[:200]},
            )
            with self._lock:
                self._deferred[ack.media_id] = self._clock() + REFUSED_RETRY_S
                if t is not None:
                    self._current = None
            return
        if ack.kind == "clip":
            done = self.clips.acknowledge(
                ack.media_id, ack.secret if ack.state == "complete" else None
            )
            if done:
                self.clips_delivered += 1
        else:
            done = self._segment_received(ack)
        if not done:
            self.bad_acks += 1
            return
        with self._lock:
            self._deferred.pop(ack.media_id, None)
            if t is not None:
                self._current = None

    def _segment_received(self, ack: MediaAck) -> bool:
        if ack.state != "complete" or self.segments is None or ack.secret is None:
            return False
        f = self.segments.read(ack.media_id)
        if f is None or not hmac.compare_digest(f.ack_secret, ack.secret):
            return False
        with self._lock:
            requests = [r for m, r in self._requested if m == ack.media_id]
            self._requested = [(m, r) for m, r in self._requested if m != ack.media_id]
        self.segments_delivered += 1
        self._audit(
            "evidence.segment_delivered",
            {"media_id": ack.media_id, "request_id": requests[0] if requests else ""},
        )
        return True
