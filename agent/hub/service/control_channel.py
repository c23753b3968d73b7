"""How the running hub sends control documents (renewals and stops from the console and
the renewal keeper) and learns what became of them: one MQTT link of the service, the
activation topic at QoS 1 (as ``lfr-hub publish`` does), and the cameras' signed
receipts (``ReceiptWatch``) feeding the lease book. The link's hub identity needs the
broker's control role (``lfr-hub broker grant --role control``)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.hub.devices.live_leases import LeaseBook
from agent.hub.intake.control_receipts import ControlReceipt, ReceiptWatch
from agent.protocol.topics import activation_topic
from agent.transport.mqtt_link import MqttLink, PublishResult

log = logging.getLogger(__name__)


class ControlChannel:
    def __init__(
        self,
        link: MqttLink,
        device_key: Callable[[str], Ed25519PublicKey | None],
        book: LeaseBook,
    ) -> None:
        self.link = link
        self.book = book
        # Subscribed before the link starts: no receipt is missed.
        self.watch = ReceiptWatch(link, device_key, on_receipt=book.on_receipt)

    def send(self, device_id: str, document: bytes, lease_s: int | None = None) -> str:
        """Publish ``document`` to the camera; its SHA-256 (what its receipt names)."""
        if lease_s is not None:
            self.book.expect(document, lease_s)
        topic = activation_topic(device_id)

        def refused(result: PublishResult) -> None:
            if not result.ok:
                log.error("broker refused %s: %s", topic, result.reason)

        self.link.publish(topic, document, on_result=refused)
        return hashlib.sha256(document).hexdigest()

    def receipt(self, document_sha256: str) -> ControlReceipt | None:
        return self.watch.receipt(document_sha256)

    def wait(self, document: bytes, timeout_s: float) -> ControlReceipt | None:
        return self.watch.wait(document, timeout_s)
