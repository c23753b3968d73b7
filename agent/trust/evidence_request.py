"""A signed request for a camera's sealed recording segments (``lfr-hub evidence request``).

The body (canonical JSON, signed by an operator or supervisor key)::

    {"device_id", "request_id": 32 hex, "from": Unix s, "to": Unix s, "issued_at": Unix s,
     "signer_certificate": base64 of the root-signed certificate,
     "revocations": base64 of the hub's root-signed revocation list}

The camera checks, in order: the envelope; the certificate against the provisioned root;
the signature under the certified key; the fields; the role (operator or supervisor);
the certificate's validity; the signer is not revoked (a newer embedded list is adopted);
the device id; the request is fresh (issued within ``MAX_AGE_S``, not from the future
beyond the clock tolerance); the range is ordered and at most ``MAX_SPAN_S`` long.
Segments are sealed to the hub evidence key, so a request can only move sealed bytes to
the hub: nothing in it can make the camera reveal what a segment holds.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import CheckFailed
from agent.protocol.fields import ALERT_ID_RE, DEVICE_ID_RE
from agent.trust.hub_trust_store import HubTrustStore
from agent.trust.key_certificates import (
    OPERATOR_ROLES,
    CertificateError,
    open_revocation_list,
)
from agent.trust.signed_document import (
    DocumentError,
    b64e,
    loads_untrusted,
    open_document,
    parse_envelope,
    sign_document,
)

EVIDENCE_REQUEST_TYPE = "application/vnd.lfr.evidence-request+json; v=1"
_FIELDS = {
    "device_id",
    "request_id",
    "from",
    "to",
    "issued_at",
    "signer_certificate",
    "revocations",
}
#: A request older than this is refused (a replay can only re-send sealed bytes anyway).
MAX_AGE_S = 24 * 3600
#: The longest range one request may ask for: the retention period.
MAX_SPAN_S = 31 * 86400
MAX_REQUEST_BYTES = 64 * 1024


class EvidenceRequestRejected(CheckFailed):
    """An evidence request that fails a check; the message names the check."""


@dataclass(frozen=True)
class EvidenceRequest:
    device_id: str
    request_id: str
    start: int
    end: int
    issued_at: int
    signer: str


def new_request_id() -> str:
    return secrets.token_hex(16)


def sign_evidence_request(
    *,
    device_id: str,
    start: int,
    end: int,
    issued_at: int,
    signing_key: Ed25519PrivateKey,
    signer_certificate: bytes,
    revocations: bytes,
    request_id: str | None = None,
) -> bytes:
    body = {
        "device_id": device_id,
        "request_id": request_id or new_request_id(),
        "from": start,
        "to": end,
        "issued_at": issued_at,
        "signer_certificate": b64e(signer_certificate),
        "revocations": b64e(revocations),
    }
    return sign_document(EVIDENCE_REQUEST_TYPE, body, signing_key)


def _int(body: dict[str, Any], name: str) -> int:
    v = body[name]
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**53:
        raise EvidenceRequestRejected(f"fields: {name} must be a non-negative integer")
    return v


def _b64(body: dict[str, Any], name: str) -> bytes:
    v = body.get(name)
    try:
        return base64.b64decode(str(v).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise EvidenceRequestRejected(f"fields: {name} is not base64") from exc


def verify_evidence_request(
    data: bytes,
    *,
    trust: HubTrustStore,
    device_id: str,
    now: float,
    tolerance_s: float,
) -> EvidenceRequest:
    """Run the checks above; EvidenceRequestRejected names the first that failed."""
    if len(data) > MAX_REQUEST_BYTES:
        raise EvidenceRequestRejected(f"envelope: larger than {MAX_REQUEST_BYTES} bytes")
    try:
        ptype, body_bytes, _ = parse_envelope(data)
        if ptype != EVIDENCE_REQUEST_TYPE:
            raise EvidenceRequestRejected(f"envelope: type {ptype[:60]!r} is not a request")
        peek = loads_untrusted(body_bytes)
    except (DocumentError, ValueError) as exc:
        raise EvidenceRequestRejected(f"envelope: {exc}") from exc
    if not isinstance(peek, dict):
        raise EvidenceRequestRejected("envelope: body is not an object")
    try:
        cert = trust.open_certificate(_b64(peek, "signer_certificate"))
    except CertificateError as exc:
        raise EvidenceRequestRejected(f"certificate: {exc}") from exc
    try:
        doc = open_document(
            data,
            EVIDENCE_REQUEST_TYPE,
            lambda kid: cert.signing_key() if kid == cert.key_id else None,
        )
    except (DocumentError, CertificateError) as exc:
        raise EvidenceRequestRejected(f"signature: {exc}") from exc
    body = doc.body
    if set(body) != _FIELDS:
        odd = sorted(set(body) ^ _FIELDS)[0]
        raise EvidenceRequestRejected(f"fields: {odd!r} missing or unknown")
    req_id, dev = body["request_id"], body["device_id"]
    if not isinstance(req_id, str) or not ALERT_ID_RE.fullmatch(req_id):
        raise EvidenceRequestRejected("fields: request_id must be 32 lower-case hex digits")
    if not isinstance(dev, str) or not DEVICE_ID_RE.fullmatch(dev):
        raise EvidenceRequestRejected("fields: device_id is not valid")
    start, end, issued = _int(body, "from"), _int(body, "to"), _int(body, "issued_at")
    if cert.role not in OPERATOR_ROLES:
        raise EvidenceRequestRejected(f"role: a {cert.role} key may not request evidence")
    if not cert.valid_at(now, tolerance_s):
        raise EvidenceRequestRejected(f"validity: certificate of {cert.subject} is not valid now")
    try:
        rl = open_revocation_list(_b64(body, "revocations"), trust.root)
        if rl.version > trust.revocation_version:
            trust.offer_revocations(rl.document)
    except CertificateError as exc:
        raise EvidenceRequestRejected(f"revocation: embedded list invalid ({exc})") from exc
    if trust.is_revoked(cert.key_id):
        raise EvidenceRequestRejected(f"revocation: the key of {cert.subject} is revoked")
    if dev != device_id:
        raise EvidenceRequestRejected(f"device: request is for {dev!r}, this is {device_id!r}")
    if not now - MAX_AGE_S <= issued <= now + tolerance_s:
        raise EvidenceRequestRejected("time: request not issued within the last 24 h")
    if end <= start or end - start > MAX_SPAN_S:
        raise EvidenceRequestRejected("range: 'to' must follow 'from' by at most 31 days")
    return EvidenceRequest(dev, req_id, start, end, issued, cert.subject)
