"""The proof behind a deployment report's acknowledgement.

A camera resends each report until the hub acknowledges it. The acknowledgement must
carry something only the hub can know, or whoever may write the camera's report-ack
topic (the broker itself, a hub certificate) could make it stop resending a report the
hub never stored. As for alerts (``alert_envelope.py``), that is a secret sealed to the
hub alert key inside what the camera sends:

    secret  = HKDF-SHA256(ikm = the device's Ed25519 private key bytes, salt = none,
                          info = "lfr/v1 report-ack " ‖ device ‖ "/" ‖ deployment ‖ "/" ‖ seq,
                          length = 16)
    ack_box = base64(sealed_box.seal(hub alert key, secret,
                                     aad = device ‖ "/" ‖ deployment ‖ "/" ‖ seq,
                                     info = "lfr/v1 report-ack"))

The camera derives the secret again when an acknowledgement arrives, so it keeps no
extra file per report; the derivation is one-way, so the secret reveals nothing of the
key. The hub opens the box with the alert private key and sends the secret back.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.errors import CheckFailed
from agent.trust.sealed_box import SealedBoxError, open_box, seal

SECRET_BYTES = 16
BOX_INFO = b"lfr/v1 report-ack"


class ReportAckError(CheckFailed):
    """An ack box that does not open for this hub and this report."""


def report_identity(device_id: str, deployment_id: str, activation_sequence: int) -> bytes:
    return f"{device_id}/{deployment_id}/{activation_sequence}".encode()


def derive_secret(device_key: Ed25519PrivateKey, identity: bytes) -> bytes:
    raw = device_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return HKDF(
        algorithm=hashes.SHA256(), length=SECRET_BYTES, salt=None, info=BOX_INFO + b" " + identity
    ).derive(raw)


def seal_secret(hub_key: X25519PublicKey, secret: bytes, identity: bytes) -> str:
    return base64.b64encode(seal(hub_key, secret, aad=identity, info=BOX_INFO)).decode("ascii")


def open_secret(hub_key: X25519PrivateKey, ack_box: str, identity: bytes) -> bytes:
    try:
        box = base64.b64decode(ack_box.encode("ascii"), validate=True)
        secret = open_box(hub_key, box, aad=identity, info=BOX_INFO)
    except (binascii.Error, UnicodeEncodeError, SealedBoxError) as exc:
        raise ReportAckError("report: ack_box does not open with this hub's alert key") from exc
    if len(secret) != SECRET_BYTES:
        raise ReportAckError("report: ack_box holds no secret of the expected length")
    return secret


def secret_matches(expected: bytes, presented: bytes) -> bool:
    return hmac.compare_digest(expected, presented)
