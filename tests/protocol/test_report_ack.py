"""Report acknowledgements: encoded and parsed strictly; the secret opens only for its hub
and its report."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.protocol.report_ack import ReportAckFormatError, decode_report_ack, encode_report_ack
from agent.trust.report_ack_secret import (
    ReportAckError,
    derive_secret,
    open_secret,
    report_identity,
    seal_secret,
)


def test_round_trip() -> None:
    entries = [("dep_2026.11-a", 3, bytes(range(16))), ("dep-1", 1, b"\xff" * 16)]
    assert decode_report_ack(encode_report_ack(entries)) == entries


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"reports":[],"v":2}', "'v' must be in"),
        (b'{"reports":[],"v":1,"x":1}', "unknown field 'x'"),
        (b'{"reports":[{"deployment_id":"d","activation_sequence":1}],"v":1}', "'secret' missing"),
        (
            b'{"reports":[{"deployment_id":"D\\u001b","activation_sequence":1,"secret":"'
            + b"a" * 32
            + b'"}],"v":1}',
            "'deployment_id' is not valid",
        ),
        (
            b'{"reports":[{"deployment_id":"d","activation_sequence":0,"secret":"'
            + b"a" * 32
            + b'"}],"v":1}',
            "'activation_sequence' must be in",
        ),
        (b'{"reports":"x","v":1}', "must be a list"),
        (b"\xff", "not UTF-8"),
        (b"[" * 100, "nested|not JSON"),
        (b" " * 20000, "larger than"),
    ],
)
def test_malformed_acks_are_refused_whole(payload: bytes, reason: str) -> None:
    with pytest.raises(ReportAckFormatError, match=reason):
        decode_report_ack(payload)


def test_the_secret_opens_only_for_its_hub_and_its_report() -> None:
    device, hub = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    identity = report_identity("cam-a", "dep-1", 7)
    secret = derive_secret(device, identity)
    assert secret == derive_secret(device, identity) and len(secret) == 16
    assert secret != derive_secret(device, report_identity("cam-a", "dep-1", 8))
    box = seal_secret(hub.public_key(), secret, identity)
    assert open_secret(hub, box, identity) == secret
    with pytest.raises(ReportAckError):
        open_secret(X25519PrivateKey.generate(), box, identity)
    with pytest.raises(ReportAckError):
        open_secret(hub, box, report_identity("cam-a", "dep-1", 8))
    with pytest.raises(ReportAckError):
        open_secret(hub, "not base64!", identity)
