"""Control receipts at the hub: was a document the hub sent applied by the camera?

The broker's PUBACK only says the broker took a document; a stolen certificate used to
be able to take the camera's session over so that a stop "accepted by the broker"
never reached it. A document counts as delivered only when the camera's own signed
receipt for it arrives (``agent/protocol/control_receipt.py``). This module is the hub's
one reading of receipts, for ``lfr-hub publish`` and the console alike:

- ``open_receipt`` verifies one message: its topic, the camera's registered key, the
  exact schema, and that it names the camera whose topic carried it;
- ``ReceiptWatch`` subscribes on a link (one camera's receipt topic, or every camera's)
  and lets callers wait for the receipt of a document by its SHA-256;
- ``Delivery`` is what to show: accepted by the broker only, applied, or refused.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.errors import CheckFailed
from agent.protocol.control_receipt import RECEIPT_TYPE, receipt_problem
from agent.protocol.topics import ALL_RECEIPTS, TopicError, parse_topic, receipt_topic
from agent.transport.mqtt_link import MqttLink
from agent.trust.signed_document import DocumentError, key_id, open_document

log = logging.getLogger(__name__)

#: Receipts kept per watch while nobody waits for them (newest win).
MAX_KEPT = 1000


class ReceiptError(CheckFailed):
    """A receipt that is not signed by the camera it names, or not of the protocol's form."""


@dataclass(frozen=True)
class ControlReceipt:
    device_id: str
    document_sha256: str
    kind: str
    sequence: int | None
    deployment_id: str | None
    outcome: str
    step: str | None
    detail: str
    camera: str
    received_at: float

    @property
    def applied(self) -> bool:
        return self.outcome == "applied"


def open_receipt(
    topic: str, payload: bytes, device_key: Callable[[str], Ed25519PublicKey | None]
) -> ControlReceipt:
    """Verify a receipt received on ``topic``; raise ReceiptError with the reason."""
    try:
        device_id, kind = parse_topic(topic)
    except TopicError as exc:
        raise ReceiptError(f"receipt: {exc}") from exc
    if kind != "receipt":
        raise ReceiptError(f"receipt: topic kind {kind!r} does not carry receipts")
    key = device_key(device_id)
    if key is None:
        raise ReceiptError(f"receipt: device {device_id!r} is not enrolled")
    kid = key_id(key)
    try:
        doc = open_document(payload, RECEIPT_TYPE, lambda k: key if k == kid else None)
    except DocumentError as exc:
        raise ReceiptError(f"receipt: {exc}") from exc
    body = doc.body
    problem = receipt_problem(body)
    if problem is not None:
        raise ReceiptError(f"receipt: {problem}")
    if body["device_id"] != device_id:
        raise ReceiptError("receipt: names another device than the one whose topic carried it")
    return ControlReceipt(
        device_id=device_id,
        document_sha256=body["document_sha256"],
        kind=body["kind"],
        sequence=body["sequence"],
        deployment_id=body["deployment_id"],
        outcome=body["outcome"],
        step=body["step"],
        detail=body["detail"],
        camera=body["camera"],
        received_at=float(body["received_at"]),
    )


@dataclass(frozen=True)
class Delivery:
    """What became of one document the hub sent to a camera."""

    device_id: str
    document_sha256: str
    broker_accepted: bool
    receipt: ControlReceipt | None

    @property
    def state(self) -> str:
        """``applied`` / ``refused`` (the camera said so), ``accepted-by-broker`` (no
        receipt yet), ``not-sent`` (the broker did not take it)."""
        if self.receipt is not None:
            return self.receipt.outcome
        return "accepted-by-broker" if self.broker_accepted else "not-sent"

    def describe(self) -> str:
        """One line for an operator (its camera text is checked, and still escaped when
        printed)."""
        r = self.receipt
        if r is None:
            if self.broker_accepted:
                return (
                    f"accepted by the broker, not confirmed by the camera {self.device_id} "
                    "(it may be offline: the broker keeps the document for its session)"
                )
            return f"not accepted by the broker for {self.device_id}"
        what = r.kind + (f" {r.deployment_id}" if r.deployment_id else "")
        what += f" (sequence {r.sequence})" if r.sequence is not None else ""
        if r.applied:
            return f"delivered: {r.device_id} applied {what}; camera {r.camera}; {r.detail}"
        return f"refused by {r.device_id} at step {r.step}: {what}; camera {r.camera}; {r.detail}"


class ReceiptWatch:
    """Receipts arriving on ``link`` (subscribe before the documents are published)."""

    def __init__(
        self,
        link: MqttLink,
        device_key: Callable[[str], Ed25519PublicKey | None],
        *,
        device_id: str | None = None,
        on_receipt: Callable[[ControlReceipt], None] | None = None,
    ) -> None:
        self.device_key = device_key
        self.on_receipt = on_receipt
        self.rejected = 0
        self._cond = threading.Condition()
        self._seen: dict[str, ControlReceipt] = {}
        link.subscribe(receipt_topic(device_id) if device_id else ALL_RECEIPTS, self.handle)

    def handle(self, topic: str, payload: bytes) -> None:
        """The MQTT message handler: keep a verified receipt, log a refused one."""
        try:
            receipt = open_receipt(topic, payload, self.device_key)
        except ReceiptError as exc:
            self.rejected += 1
            log.warning("%s", exc)
            return
        # Followers first: whoever waits for this receipt then finds them up to date.
        if self.on_receipt is not None:
            self.on_receipt(receipt)
        with self._cond:
            self._seen[receipt.document_sha256] = receipt
            while len(self._seen) > MAX_KEPT:
                self._seen.pop(next(iter(self._seen)))
            self._cond.notify_all()

    def receipt(self, document_sha256: str) -> ControlReceipt | None:
        with self._cond:
            return self._seen.get(document_sha256)

    def wait(self, document: bytes, timeout_s: float) -> ControlReceipt | None:
        """The receipt for ``document`` (the exact bytes sent), or None after ``timeout_s``."""
        digest = hashlib.sha256(document).hexdigest()
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while digest not in self._seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._seen[digest]
