"""Root-signed key certificates and the root-signed revocation list.

The hub root key (Ed25519, kept offline) is the only key a device is
provisioned with. Every other hub key reaches the device inside a certificate
the root signed, which says what the key is for (its role) and for how long:

    role          key type  may sign / is used for
    supervisor    ed25519   activations, renewals, stops
    operator      ed25519   renewals, stops
    watchlist     ed25519   watchlist bundles
    alert         x25519    (encryption) devices seal alerts and alert clips to it
    evidence      x25519    (encryption) devices seal CCTV recording segments to it

A revocation list names revoked key ids. It carries a version that only
grows; a device keeps the highest version it has verified and never goes back.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.errors import CheckFailed
from agent.protocol.fields import NAME_PATTERN as NAME_PATTERN
from agent.trust.signed_document import (
    DocumentError,
    b64e,
    key_id,
    open_document,
    raw_public_bytes,
    sign_document,
)

CERTIFICATE_TYPE = "application/vnd.lfr.key-certificate+json; v=1"
REVOCATION_LIST_TYPE = "application/vnd.lfr.revocation-list+json; v=1"

ROLE_SUPERVISOR = "supervisor"
ROLE_OPERATOR = "operator"
ROLE_WATCHLIST = "watchlist"
ROLE_ALERT = "alert"
ROLE_EVIDENCE = "evidence"
ROLE_KEY_TYPES = {
    ROLE_SUPERVISOR: "ed25519",
    ROLE_OPERATOR: "ed25519",
    ROLE_WATCHLIST: "ed25519",
    ROLE_ALERT: "x25519",
    ROLE_EVIDENCE: "x25519",
}
OPERATOR_ROLES = (ROLE_OPERATOR, ROLE_SUPERVISOR)
_HEX64 = re.compile(r"[0-9a-f]{64}")

CERTIFICATE_FIELDS = {
    "subject",
    "role",
    "key_type",
    "public_key",
    "key_id",
    "not_before",
    "not_after",
    "issued_at",
}
REVOCATION_FIELDS = {"version", "issued_at", "revoked_key_ids"}


class CertificateError(CheckFailed):
    """A certificate or revocation list is malformed or not signed by the root key."""


@dataclass(frozen=True)
class KeyCertificate:
    """A verified certificate: which key, for what role, valid when."""

    subject: str
    role: str
    key_type: str
    public_key: Ed25519PublicKey | X25519PublicKey
    key_id: str
    not_before: int
    not_after: int
    issued_at: int
    document: bytes  # the exact signed envelope, for re-distribution

    def valid_at(self, now: float, tolerance_s: float = 0.0) -> bool:
        return self.not_before - tolerance_s <= now < self.not_after + tolerance_s

    def signing_key(self) -> Ed25519PublicKey:
        if not isinstance(self.public_key, Ed25519PublicKey):
            raise CertificateError(f"certificate {self.subject}: key is not a signing key")
        return self.public_key


@dataclass(frozen=True)
class RevocationList:
    version: int
    issued_at: int
    revoked_key_ids: frozenset[str]
    document: bytes


def _int(body: dict[str, Any], name: str, what: str) -> int:
    v = body.get(name)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise CertificateError(f"{what}.{name}: must be a non-negative integer")
    return v


def _root_finder(root: Ed25519PublicKey) -> Any:
    root_id = key_id(root)
    return lambda kid: root if kid == root_id else None


def issue_certificate(
    root_key: Ed25519PrivateKey,
    subject: str,
    role: str,
    public_key: Ed25519PublicKey | X25519PublicKey,
    not_before: int,
    not_after: int,
    issued_at: int,
) -> bytes:
    """Sign a certificate binding ``public_key`` to ``role`` for [not_before, not_after)."""
    if role not in ROLE_KEY_TYPES:
        raise CertificateError(f"certificate: unknown role {role!r}")
    kt = "x25519" if isinstance(public_key, X25519PublicKey) else "ed25519"
    if ROLE_KEY_TYPES[role] != kt:
        raise CertificateError(f"certificate: role {role} needs an {ROLE_KEY_TYPES[role]} key")
    if not re.fullmatch(NAME_PATTERN, subject):
        raise CertificateError(f"certificate: subject {subject!r} must match {NAME_PATTERN}")
    if not_after <= not_before:
        raise CertificateError("certificate: not_after must be later than not_before")
    body = {
        "subject": subject,
        "role": role,
        "key_type": kt,
        "public_key": b64e(raw_public_bytes(public_key)),
        "key_id": key_id(public_key),
        "not_before": not_before,
        "not_after": not_after,
        "issued_at": issued_at,
    }
    return sign_document(CERTIFICATE_TYPE, body, root_key)


def open_certificate(data: bytes, root: Ed25519PublicKey) -> KeyCertificate:
    """Verify a certificate against the root public key and return its contents."""
    try:
        doc = open_document(data, CERTIFICATE_TYPE, _root_finder(root))
    except DocumentError as exc:
        raise CertificateError(f"certificate: {exc}") from exc
    body = doc.body
    if set(body) != CERTIFICATE_FIELDS:
        odd = sorted(set(body) ^ CERTIFICATE_FIELDS)[0]
        raise CertificateError(f"certificate: field {odd!r} missing or unknown")
    subject, role, kt = body["subject"], body["role"], body["key_type"]
    if not isinstance(subject, str) or not re.fullmatch(NAME_PATTERN, subject):
        raise CertificateError("certificate.subject: not a valid name")
    if role not in ROLE_KEY_TYPES or ROLE_KEY_TYPES[role] != kt:
        raise CertificateError(f"certificate.role: {role!r} with key type {kt!r} is not valid")
    try:
        raw = base64.b64decode(str(body["public_key"]).encode("ascii"), validate=True)
        pub: Ed25519PublicKey | X25519PublicKey = (
            Ed25519PublicKey.from_public_bytes(raw)
            if kt == "ed25519"
            else X25519PublicKey.from_public_bytes(raw)
        )
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise CertificateError("certificate.public_key: not a 32-byte base64 key") from exc
    if body["key_id"] != key_id(pub):
        raise CertificateError("certificate.key_id: does not match the public key")
    nb = _int(body, "not_before", "certificate")
    na = _int(body, "not_after", "certificate")
    if na <= nb:
        raise CertificateError("certificate.not_after: not later than not_before")
    return KeyCertificate(
        subject, role, kt, pub, key_id(pub), nb, na, _int(body, "issued_at", "certificate"), data
    )


def issue_revocation_list(
    root_key: Ed25519PrivateKey, version: int, revoked_key_ids: Iterable[str], issued_at: int
) -> bytes:
    ids = sorted(set(revoked_key_ids))
    for kid in ids:
        if not _HEX64.fullmatch(kid):
            raise CertificateError(f"revocation list: {kid!r} is not a key id")
    body = {"version": version, "issued_at": issued_at, "revoked_key_ids": ids}
    return sign_document(REVOCATION_LIST_TYPE, body, root_key)


def open_revocation_list(data: bytes, root: Ed25519PublicKey) -> RevocationList:
    try:
        doc = open_document(data, REVOCATION_LIST_TYPE, _root_finder(root))
    except DocumentError as exc:
        raise CertificateError(f"revocation list: {exc}") from exc
    body = doc.body
    if set(body) != REVOCATION_FIELDS:
        raise CertificateError("revocation list: fields missing or unknown")
    ids = body["revoked_key_ids"]
    if not isinstance(ids, list) or not all(
        isinstance(k, str) and _HEX64.fullmatch(k) for k in ids
    ):
        raise CertificateError("revocation list.revoked_key_ids: must be a list of key ids")
    return RevocationList(
        _int(body, "version", "revocation list"),
        _int(body, "issued_at", "revocation list"),
        frozenset(ids),
        data,
    )
