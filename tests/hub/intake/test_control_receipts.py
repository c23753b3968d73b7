"""Control receipts: what the camera signs is what the hub accepts, and nothing else."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.hub.intake.control_receipts import Delivery, ReceiptError, open_receipt
from agent.protocol.control_receipt import RECEIPT_TYPE
from agent.protocol.topics import alert_topic, receipt_topic
from agent.runtime.control_receipts import ControlOutcome, build_receipt, peek_document
from agent.trust.signed_document import sign_document

DEV, OTHER = "cam-a", "cam-b"
KEY, OTHER_KEY = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
KEYS = {DEV: KEY.public_key(), OTHER: OTHER_KEY.public_key()}
DOC = b'{"payload":"x"}'


def _receipt(outcome: ControlOutcome, key: Ed25519PrivateKey = KEY, device: str = DEV) -> bytes:
    return build_receipt(device, DOC, outcome, "closed", 1_800_000_000.5, key)


def test_a_camera_receipt_opens_and_describes_what_happened() -> None:
    stopped = ControlOutcome("stop", "applied", "stopped dep-1", None, 12, "dep-1")
    r = open_receipt(receipt_topic(DEV), _receipt(stopped), KEYS.get)
    assert r.document_sha256 == hashlib.sha256(DOC).hexdigest()
    assert (r.kind, r.sequence, r.deployment_id, r.outcome, r.camera) == (
        "stop",
        12,
        "dep-1",
        "applied",
        "closed",
    )
    line = Delivery(DEV, r.document_sha256, True, r).describe()
    assert line.startswith("delivered: cam-a applied stop dep-1 (sequence 12); camera closed")
    refused = ControlOutcome("stop", "refused", "rejected: sequence: replayed", "sequence", 3)
    r = open_receipt(receipt_topic(DEV), _receipt(refused), KEYS.get)
    assert Delivery(DEV, "", True, r).state == "refused" and r.step == "sequence"
    assert (
        Delivery(DEV, "", True, None)
        .describe()
        .startswith("accepted by the broker, not confirmed by the camera")
    )


def test_the_camera_escapes_what_it_quotes_from_a_refused_document() -> None:
    outcome = ControlOutcome(
        "unknown", "refused", "rejected: envelope: \x1b[2J" + "x" * 300, "envelope"
    )
    r = open_receipt(receipt_topic(DEV), _receipt(outcome), KEYS.get)
    assert "\x1b" not in r.detail and "\\x1b[2J" in r.detail and len(r.detail) == 200


def _signed_body(**changes: object) -> bytes:
    body = {
        "v": 1,
        "device_id": DEV,
        "document_sha256": "ab" * 32,
        "kind": "stop",
        "sequence": 1,
        "deployment_id": "dep-1",
        "outcome": "applied",
        "step": None,
        "detail": "stopped dep-1",
        "camera": "closed",
        "received_at": 1.0,
        **changes,
    }
    return sign_document(RECEIPT_TYPE, body, KEY)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (
            receipt_topic(DEV),
            _receipt(ControlOutcome("stop", "applied", "x"), OTHER_KEY),
            "signature",
        ),
        (
            receipt_topic(OTHER),
            _receipt(ControlOutcome("stop", "applied", "x"), OTHER_KEY),
            "another device",
        ),
        (receipt_topic("cam-c"), _receipt(ControlOutcome("stop", "applied", "x")), "not enrolled"),
        (alert_topic(DEV), _receipt(ControlOutcome("stop", "applied", "x")), "does not carry"),
        (receipt_topic(DEV), _signed_body(detail="ok\x1b]0;x\x07"), "'detail' must be printable"),
        (receipt_topic(DEV), _signed_body(outcome="refused"), "'step' must be null exactly"),
        (receipt_topic(DEV), _signed_body(camera="closed\r"), "'camera' is not one of"),
        (receipt_topic(DEV), _signed_body(extra=1), "unknown field 'extra'"),
        (receipt_topic(DEV), _signed_body(sequence=True), "'sequence' must be an integer"),
        (receipt_topic(DEV), b"garbage", "receipt: document"),
    ],
)
def test_anything_else_is_refused_with_the_reason(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(ReceiptError, match=reason):
        open_receipt(topic, payload, KEYS.get)


def test_what_a_document_claims_is_echoed_only_when_it_matches_its_pattern() -> None:
    body = {"sequence": 7, "deployment_id": "Dep 1\x1b"}
    doc = sign_document("application/vnd.lfr.stop+json; v=1", body, KEY)
    facts = peek_document(doc)
    assert (facts.kind, facts.sequence, facts.deployment_id) == ("stop", 7, None)
    assert peek_document(b"junk").kind == "unknown"
    # A step name that is not of the protocol's form is sent as the generic "refused".
    bad_step = _receipt(ControlOutcome("unknown", "refused", "x", "Bad Step"))
    assert open_receipt(receipt_topic(DEV), bad_step, KEYS.get).step == "refused"
