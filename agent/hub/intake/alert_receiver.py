"""Receiving alerts at the hub: verify, check the sender, decrypt, store once, then ack.

``AlertReceiver.receive`` is the whole decision for one MQTT message and never raises
for bad input: every payload ends as stored, duplicate or rejected. ``HubAlertWorker``
connects it to the broker: it subscribes ``lfr/v1/+/alert`` (or the shared subscription
``$share/<group>/lfr/v1/+/alert`` so several workers split the load) and acknowledges on
``lfr/v1/<dev>/ack`` only after the store has committed, so a crash between the two
only causes a redelivery, which de-duplication absorbs. The ack carries the alert's ack
secret as stored with it, which only a hub that decrypted the alert can know; an alert
from a device that predates ack secrets has none and is not acknowledged (the device
keeps it until its retention period).

Replays: a re-send of an alert already stored (the same signed content, however it is
encoded), or stored and since purged by retention (its tombstone remains), is a
duplicate (not stored again, acknowledged again so the device can delete it); an
envelope re-using the device's stored alert id or sequence number with other signed
content, one arriving on another device's topic,
one sealed longer ago than the retention period, or one signed by a key not enrolled for
that device is rejected. Rejections are logged with the reason and topic, never content.

Plate alerts arrive on the same topic and are told apart by their signed payload type:
they are opened by their own checks (``plate_alert_envelope``), stored in their own
tables (``PlateAlertStore``) and acknowledged the same way. Nothing relates the two kinds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.hub.store.alert_store import AlertStore, StoreResult
from agent.hub.store.plate_alert_store import PlateAlertStore
from agent.protocol.plate_alert import PLATE_ALERT_PAYLOAD_TYPE
from agent.protocol.topics import ALL_ALERTS, TopicError, ack_topic, parse_topic
from agent.protocol.topics import shared_subscription as _shared
from agent.transport.mqtt_link import MqttLink
from agent.trust.alert_envelope import (
    AlertEnvelopeError,
    OpenedAlert,
    encode_ack,
    envelope_payload_type,
    open_alert,
)
from agent.trust.plate_alert_envelope import OpenedPlateAlert, open_plate_alert

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 31 * 86400.0


@dataclass(frozen=True)
class Receipt:
    """What became of one received message."""

    outcome: str  # "stored", "duplicate" or "rejected"
    topic: str
    device_id: str | None = None
    alert: OpenedAlert | None = None
    reason: str | None = None
    plate_alert: OpenedPlateAlert | None = None

    @property
    def alert_id(self) -> str | None:
        opened = self.alert or self.plate_alert
        return None if opened is None else opened.header.alert_id


@dataclass
class ReceiverStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)


class AlertReceiver:
    """Turns raw (topic, payload) pairs into stored alerts. Thread-safe."""

    def __init__(
        self,
        store: AlertStore,
        hub_key: X25519PrivateKey,
        *,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.time,
        plate_store: PlateAlertStore | None = None,
    ) -> None:
        self.store = store
        #: Plate alerts' own store, on the same database unless given.
        self.plate_store = plate_store or PlateAlertStore(store.database)
        self.hub_key = hub_key
        self.max_age_s = max_age_s
        self.clock = clock
        self.stats = ReceiverStats()
        self._lock = threading.Lock()

    def _reject(self, topic: str, reason: str, device_id: str | None = None) -> Receipt:
        log.warning("alert rejected on %r: %s", topic[:120], reason)
        with self._lock:
            self.stats.rejected += 1
            self.stats.reject_reasons[reason.split(":")[0][:60]] += 1
        return Receipt("rejected", topic, device_id, reason=reason)

    def receive(self, topic: str, payload: bytes) -> Receipt:
        with self._lock:
            self.stats.received += 1
        try:
            device_id, kind = parse_topic(topic)
        except TopicError as exc:
            return self._reject(topic, str(exc))
        if kind != "alert":
            return self._reject(topic, f"topic kind {kind!r} does not carry alerts", device_id)
        key = self.store.device_key(device_id)
        if key is None:
            return self._reject(topic, f"device {device_id!r} is not enrolled", device_id)
        if envelope_payload_type(payload) == PLATE_ALERT_PAYLOAD_TYPE:
            return self._receive_plate(topic, payload, device_id, key)
        try:
            alert = open_alert(payload, sender=device_id, device_key=key, hub_key=self.hub_key)
        except AlertEnvelopeError as exc:
            return self._reject(topic, str(exc), device_id)
        age = self.clock() - alert.header.sealed_at
        if age > self.max_age_s:
            return self._reject(
                topic, f"alert: sealed {age / 86400:.1f} days ago, beyond retention", device_id
            )
        result = self.store.store_alert(alert, key=key)
        if result is StoreResult.CONFLICT:
            return self._reject(
                topic,
                f"alert: id {alert.header.alert_id} or sequence {alert.header.seq} "
                "already used by a different envelope (replay or forgery)",
                device_id,
            )
        with self._lock:
            if result is StoreResult.STORED:
                self.stats.stored += 1
            else:
                self.stats.duplicates += 1
        if result is StoreResult.DUPLICATE:
            purged = (
                " (purged by retention earlier)"
                if self.store.is_purged(alert.header.alert_id)
                else ""
            )
            log.info(
                "alert %s from %s: duplicate, not stored again%s",
                alert.header.alert_id,
                device_id,
                purged,
            )
        return Receipt(result.value, topic, device_id, alert)

    def _receive_plate(
        self, topic: str, payload: bytes, device_id: str, key: Ed25519PublicKey
    ) -> Receipt:
        try:
            alert = open_plate_alert(
                payload, sender=device_id, device_key=key, hub_key=self.hub_key
            )
        except AlertEnvelopeError as exc:
            return self._reject(topic, str(exc), device_id)
        age = self.clock() - alert.header.sealed_at
        if age > self.max_age_s:
            return self._reject(
                topic,
                f"plate alert: sealed {age / 86400:.1f} days ago, beyond retention",
                device_id,
            )
        result = self.plate_store.store_alert(alert, key)
        if result is StoreResult.CONFLICT:
            return self._reject(
                topic,
                f"plate alert: id {alert.header.alert_id} or sequence {alert.header.seq} "
                "already used by a different envelope (replay or forgery)",
                device_id,
            )
        with self._lock:
            if result is StoreResult.STORED:
                self.stats.stored += 1
            else:
                self.stats.duplicates += 1
        return Receipt(result.value, topic, device_id, plate_alert=alert)

    def ack_secret(self, receipt: Receipt) -> bytes | None:
        """The stored ack secret of a received alert of either kind."""
        if receipt.device_id is None:
            return None
        if receipt.plate_alert is not None:
            return self.plate_store.ack_secret(
                receipt.plate_alert.header.alert_id, device_id=receipt.device_id
            )
        if receipt.alert is not None:
            return self.store.ack_secret(receipt.alert.header.alert_id, device_id=receipt.device_id)
        return None


class HubAlertWorker:
    """One hub worker: broker subscription → receiver → acknowledgement."""

    def __init__(
        self,
        link: MqttLink,
        receiver: AlertReceiver,
        *,
        share_group: str | None = None,
        on_receipt: Callable[[Receipt], None] | None = None,
    ) -> None:
        self.link = link
        self.receiver = receiver
        self.on_receipt = on_receipt
        self.subscription = _shared(share_group, ALL_ALERTS) if share_group else ALL_ALERTS
        link.subscribe(self.subscription, self._on_message)

    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        self.link.stop()

    def _on_message(self, topic: str, payload: bytes) -> None:
        receipt = self.receiver.receive(topic, payload)
        alert_id = receipt.alert_id
        if alert_id is not None and receipt.device_id is not None:
            # The store has committed: only now may the device forget the alert. The
            # secret is the stored one (a duplicate carries the same signed content, so
            # the same sealed secret).
            secret = self.receiver.ack_secret(receipt)
            if secret is not None:
                self.link.publish(ack_topic(receipt.device_id), encode_ack([(alert_id, secret)]))
        if self.on_receipt is not None:
            self.on_receipt(receipt)
