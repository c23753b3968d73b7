"""Control receipts on the camera: after each document on its activation or watchlist
topic, a signed word to the hub of what became of it (``agent/protocol/control_receipt.py``).

The receipt is published once, QoS 1, after the document has been applied or refused;
paho holds it in memory across a reconnect. It is not kept on disk: if it is lost the
hub shows the document as accepted by the broker but not confirmed, which is the truth
as far as the hub can know it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import LfrError
from agent.protocol.control_receipt import MAX_DETAIL, RECEIPT_TYPE, STEP_RE
from agent.protocol.fields import NAME_RE
from agent.protocol.topics import receipt_topic
from agent.transport.mqtt_link import MqttLink
from agent.trust.activation_token import KIND_BY_TYPE
from agent.trust.key_certificates import REVOCATION_LIST_TYPE
from agent.trust.signed_document import (
    DocumentError,
    UntrustedJsonError,
    loads_untrusted,
    parse_envelope,
    sign_document,
)
from agent.untrusted_text import shown

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControlOutcome:
    """What the camera did with one document; ``detail`` is one line for people."""

    kind: str
    outcome: str  # "applied" or "refused"
    detail: str
    step: str | None = None
    sequence: int | None = None
    deployment_id: str | None = None


@dataclass(frozen=True)
class DocumentFacts:
    """What a document says it is, read before (or without) verifying it."""

    kind: str
    sequence: int | None
    deployment_id: str | None


def peek_document(payload: bytes) -> DocumentFacts:
    """Kind, sequence and deployment as the document claims them: only to name it in a
    receipt. Values that do not match their patterns are left out."""
    try:
        ptype, body_bytes, _ = parse_envelope(payload)
    except DocumentError:
        return DocumentFacts("unknown", None, None)
    if ptype == REVOCATION_LIST_TYPE:
        return DocumentFacts("revocations", None, None)
    kind = KIND_BY_TYPE.get(ptype, "unknown")
    try:
        body = loads_untrusted(body_bytes)
    except UntrustedJsonError:
        return DocumentFacts(kind, None, None)
    if not isinstance(body, dict):
        return DocumentFacts(kind, None, None)
    seq, dep = body.get("sequence"), body.get("deployment_id")
    return DocumentFacts(
        kind,
        seq if isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq < 2**53 else None,
        dep if isinstance(dep, str) and NAME_RE.fullmatch(dep) else None,
    )


def build_receipt(
    device_id: str,
    payload: bytes,
    outcome: ControlOutcome,
    camera: str,
    received_at: float,
    device_key: Ed25519PrivateKey,
) -> bytes:
    step = outcome.step if outcome.outcome == "refused" else None
    if outcome.outcome == "refused" and (step is None or not STEP_RE.fullmatch(step)):
        step = "refused"
    body = {
        "v": 1,
        "device_id": device_id,
        "document_sha256": hashlib.sha256(payload).hexdigest(),
        "kind": outcome.kind,
        "sequence": outcome.sequence,
        "deployment_id": outcome.deployment_id,
        "outcome": outcome.outcome,
        "step": step,
        # Refusal reasons may quote the document: escaped, then cut to one short line.
        "detail": shown(outcome.detail)[:MAX_DETAIL],
        "camera": camera,
        "received_at": round(received_at, 3),
    }
    return sign_document(RECEIPT_TYPE, body, device_key)


class ReceiptSender:
    """Signs and publishes receipts for one camera."""

    def __init__(
        self,
        link: MqttLink,
        device_id: str,
        device_key: Ed25519PrivateKey,
        wall: Callable[[], float],
    ) -> None:
        self.link = link
        self.device_id = device_id
        self.device_key = device_key
        self.wall = wall
        self.sent = 0

    def send(self, payload: bytes, outcome: ControlOutcome, camera: str) -> None:
        receipt = build_receipt(
            self.device_id, payload, outcome, camera, self.wall(), self.device_key
        )
        try:
            self.link.publish(receipt_topic(self.device_id), receipt)
            self.sent += 1
        except LfrError as exc:
            log.warning("control receipt not published: %s", exc)
