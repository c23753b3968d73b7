"""Delivering sealed alerts: outbox → MQTT, hub acknowledgement → outbox delete.

``submit`` seals an alert, stores it durably in the outbox and only then queues it for
publishing. A single pump thread publishes pending entries while the link is up, and
again after every reconnect (paho forgets unacknowledged messages when the process
dies, and the broker may lose queued ones in a crash) and whenever the hub has not
acknowledged an entry within ``resend_after_s``. Duplicates are expected and harmless:
the hub stores each alert id once and acknowledges every copy.

The pump also applies the outbox retention period every few minutes.

A PUBACK is not the end: an entry is deleted only when the hub's acknowledgement naming
its id arrives on ``lfr/v1/<dev>/ack``, which the hub sends after its database commit,
and carries the entry's ack secret. That secret travels only inside the encrypted alert,
so an ack without it (from the broker, another hub certificate, or anyone holding this
camera's certificate) deletes nothing: it is counted, logged once per burst and the
alert is re-sent as usual.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.config import AgentConfig
from agent.protocol.topics import ack_topic, alert_topic
from agent.transport.alert_outbox import AckResult, AlertOutbox
from agent.transport.mqtt_link import MqttLink, MqttLinkError, PublishResult
from agent.trust.alert_envelope import (
    AlertContent,
    AlertEnvelopeError,
    SealedAlert,
    decode_ack,
    seal_alert,
)
from agent.trust.plate_alert_envelope import PlateAlertContent, seal_plate_alert

log = logging.getLogger(__name__)

#: Most alerts awaiting a PUBACK at once; the rest wait in the outbox, not in memory.
PUBLISH_WINDOW = 100
#: How often the pump applies the outbox retention period.
PURGE_EVERY_S = 600.0
#: Acks without a valid proof are logged at most this often (a flood must not flood logs).
FORGED_ACK_LOG_EVERY_S = 60.0


class AlertPublisher:
    """Owns the device's alert and ack topics on one ``MqttLink``."""

    def __init__(
        self,
        outbox: AlertOutbox,
        link: MqttLink,
        *,
        device_id: str,
        device_key: Ed25519PrivateKey,
        hub_key: X25519PublicKey,
        resend_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.link = link
        self.device_id = device_id
        self._device_key = device_key
        self._hub_key = hub_key
        self.resend_after_s = resend_after_s
        self._clock = clock
        self._alert_topic = alert_topic(device_id)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_sent: dict[str, float] = {}  # alert id → when published on this link
        self._awaiting_puback: set[str] = set()
        self._thread: threading.Thread | None = None
        self.acknowledged = 0
        self.published = 0
        self.rejected_by_broker = 0
        #: Acks that named a pending alert without its secret, or were malformed.
        self.forged_acks = 0
        self._forged_unlogged = 0
        self._forged_logged_at: float | None = None
        self._last_purge: float | None = None
        link.subscribe(ack_topic(device_id), self._on_ack)
        link.add_connect_listener(self._on_connected)

    @classmethod
    def from_config(
        cls,
        cfg: AgentConfig,
        outbox: AlertOutbox,
        link: MqttLink,
        *,
        device_key: Ed25519PrivateKey,
        hub_key: X25519PublicKey,
    ) -> AlertPublisher:
        return cls(
            outbox,
            link,
            device_id=cfg.device.id,
            device_key=device_key,
            hub_key=hub_key,
            resend_after_s=cfg.outbox.resend_after_s,
        )

    # ---- device side API ------------------------------------------------------------
    def submit(self, content: AlertContent | PlateAlertContent) -> SealedAlert:
        """Seal and durably store an alert, then queue it. Raises OutboxFullError at the cap."""
        sealed = self.seal(content)
        self.store(sealed)
        return sealed

    def seal(self, content: AlertContent | PlateAlertContent) -> SealedAlert:
        """Give the alert (a face or a plate alert) its sequence number (on disk first)
        and seal it to the hub. Both kinds share one sequence, outbox and ack.

        Raises OutboxError when the sequence number cannot be stored."""
        if content.device_id != self.device_id:
            raise ValueError(f"alert for device {content.device_id!r} on {self.device_id!r}")
        seq = self.outbox.next_sequence()
        if isinstance(content, PlateAlertContent):
            return seal_plate_alert(
                content, seq=seq, device_key=self._device_key, hub_key=self._hub_key
            )
        return seal_alert(content, seq=seq, device_key=self._device_key, hub_key=self._hub_key)

    def store(self, sealed: SealedAlert) -> None:
        """Store a sealed alert durably and queue it for publishing.

        Raises OutboxError (OutboxFullError at the cap); the same sealed alert may be
        stored again later, keeping its id and sequence number."""
        h = sealed.header
        self.outbox.add(h.alert_id, h.seq, sealed.envelope, sealed.ack_secret)
        self._wake.set()

    def start(self) -> None:
        """Start the pump thread (the link is started separately by its owner)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._pump, name="alert-publisher", daemon=True)
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def has_unsent(self) -> bool:
        """Whether an alert waits to be handed to the broker on this link (or for its
        PUBACK): video transfers hold back until it is through."""
        pending = self.outbox.pending()
        with self._lock:
            if self._awaiting_puback:
                return True
            return any(e.alert_id not in self._last_sent for e in pending)

    # ---- pump ---------------------------------------------------------------------
    def _pump(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                now = self._clock()
                if self._last_purge is None or now - self._last_purge >= PURGE_EVERY_S:
                    self._last_purge = now
                    self.outbox.purge_expired()
                self.publish_due()
            except Exception:
                log.exception("alert publisher: pump step failed; retrying")

    def publish_due(self) -> int:
        """Publish pending entries that were never sent on this link or are overdue."""
        if not self.link.connected:
            return 0
        now = self._clock()
        sent = 0
        for entry in self.outbox.pending():
            with self._lock:
                if len(self._awaiting_puback) >= PUBLISH_WINDOW:
                    break
                last = self._last_sent.get(entry.alert_id)
                if entry.alert_id in self._awaiting_puback or (
                    last is not None and now - last < self.resend_after_s
                ):
                    continue
            envelope = self.outbox.read(entry.alert_id)
            if envelope is None:
                continue
            if not self.link.connected:
                break
            with self._lock:
                self._last_sent[entry.alert_id] = now
                self._awaiting_puback.add(entry.alert_id)
            try:
                self.link.publish(
                    self._alert_topic,
                    envelope,
                    on_result=functools.partial(self._on_result, entry.alert_id),
                )
            except MqttLinkError as exc:
                log.warning("alert publisher: %s", exc)
                with self._lock:
                    self._awaiting_puback.discard(entry.alert_id)
                break
            sent += 1
        self.published += sent
        return sent

    # ---- callbacks (paho thread) ------------------------------------------------------
    def _on_connected(self) -> None:
        with self._lock:
            # Whatever was in flight on the old connection may be lost: send it again.
            self._last_sent.clear()
            self._awaiting_puback.clear()
        self._wake.set()

    def _on_result(self, alert_id: str, result: PublishResult) -> None:
        with self._lock:
            self._awaiting_puback.discard(alert_id)
        if not result.ok:
            self.rejected_by_broker += 1
            log.error(
                "alert %s: broker refused it (%s); check the certificate CN equals %s",
                alert_id,
                result.reason,
                self.device_id,
            )
        self._wake.set()

    def _on_ack(self, topic: str, payload: bytes) -> None:
        try:
            proofs = decode_ack(payload)
        except AlertEnvelopeError:
            self._count_forged(1)
            return
        refused = 0
        for alert_id, secret in proofs:
            result = self.outbox.acknowledge(alert_id, secret)
            if result is AckResult.REFUSED:
                # Not proof that the hub stored it: keep the entry and its resend timer.
                refused += 1
                continue
            if result is AckResult.DELETED:
                self.acknowledged += 1
            with self._lock:
                self._last_sent.pop(alert_id, None)
        if refused:
            self._count_forged(refused)

    def _count_forged(self, n: int) -> None:
        now = self._clock()
        with self._lock:
            self.forged_acks += n
            self._forged_unlogged += n
            last = self._forged_logged_at
            if last is not None and now - last < FORGED_ACK_LOG_EVERY_S:
                return
            self._forged_logged_at = now
            count, self._forged_unlogged = self._forged_unlogged, 0
        log.warning(
            "alert publisher: ignored %d acknowledgement(s) without a valid hub proof "
            "(malformed, or wrong or missing ack secret); the alerts stay in the outbox",
            count,
        )
