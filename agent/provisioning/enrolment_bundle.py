"""The approval bundle: what the hub sends back to one enrolling device.

A bundle is one signed document (``application/vnd.lfr.enrolment-bundle+json; v=1``)
signed by a hub **supervisor** key. Its body carries everything the device needs::

    device_id, issued_at, expires_at     whom it is for, and when the approval lapses
    request_sha256, device_signing_key_id   binds it to the request this device made
    device_cert_pem                      the TLS client certificate (CN = device id)
    broker_ca_pem, broker_url            the broker's CA and mqtts://host:port
    hub_files                            hub-root-pub.pem, hub-certificates/*.cert.json,
                                         hub-revocations.json (base64), as the device stores them
    signer_certificate                   the supervisor's root-signed key certificate (base64)
    device_config                        {"device": {"id"}, "mqtt": {"host", "port"}}

**Trust on first use.** A device that has never been enrolled holds no hub root key, so
the root inside the bundle cannot vouch for itself. The device computes the root key's
fingerprint (hex SHA-256 of the raw key, the same as ``key_id``) and accepts it only
when the technician confirms it: ``--root-fingerprint`` (the value the hub operator
reads out, at least 16 hex digits), or ``--yes`` after comparing the printed value.
A device already holding a root accepts only bundles with that same root. Only then are
the supervisor certificate (against that root, not revoked by the bundled list) and the
bundle signature checked, and only then is anything else in the body believed.

Time windows (bundle and certificate expiry) are enforced only while the system clock is
synchronised: a board without a real-time clock boots with an old date, and refusing on
that would strand the device; signatures are always checked.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.provisioning.enrolment_request import DEVICE_ID_RE, EnrolmentError
from agent.trust.hub_trust_store import (
    CERTIFICATE_SUFFIX,
    CERTIFICATES_DIR,
    REVOCATIONS_FILE,
    ROOT_PUBLIC_FILE,
)
from agent.trust.key_certificates import (
    ROLE_SUPERVISOR,
    CertificateError,
    KeyCertificate,
    open_certificate,
    open_revocation_list,
)
from agent.trust.signed_document import (
    DocumentError,
    UntrustedJsonError,
    b64e,
    key_id,
    loads_untrusted,
    open_document,
    parse_envelope,
    sign_document,
)

BUNDLE_TYPE = "application/vnd.lfr.enrolment-bundle+json; v=1"
BUNDLE_VALID_S = 14 * 86400
BODY_FIELDS = {
    "device_id",
    "issued_at",
    "expires_at",
    "request_sha256",
    "device_signing_key_id",
    "device_cert_pem",
    "broker_ca_pem",
    "broker_url",
    "hub_files",
    "signer_certificate",
    "device_config",
}
_HUB_FILE_RE = re.compile(
    rf"^({re.escape(ROOT_PUBLIC_FILE)}|{re.escape(REVOCATIONS_FILE)}|"
    rf"{re.escape(CERTIFICATES_DIR)}/[a-z0-9][a-z0-9._-]{{0,62}}{re.escape(CERTIFICATE_SUFFIX)})$"
)
_HEX = re.compile(r"^[0-9a-f]+$")


class BundleRefused(EnrolmentError):
    """The bundle is malformed, not for this device, or does not verify."""

    exit_code = 1


def parse_broker_url(url: str) -> tuple[str, int]:
    """``mqtts://host[:port]`` → (host, port); port defaults to 8883."""
    try:
        parts = urlsplit(url)
        port = parts.port or 8883
    except ValueError as exc:
        raise EnrolmentError(f"broker url {url[:100]!r}: not a valid URL ({exc})") from exc
    if parts.scheme != "mqtts" or not parts.hostname:
        raise EnrolmentError(f"broker url {url[:100]!r}: expected mqtts://HOST[:PORT]")
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise EnrolmentError(f"broker url {url[:100]!r}: expected mqtts://HOST[:PORT] only")
    return parts.hostname, port


def normalise_fingerprint(text: str) -> str:
    fp = re.sub(r"[\s:]", "", text).lower()
    if not _HEX.fullmatch(fp) or not 16 <= len(fp) <= 64:
        raise EnrolmentError(
            "--root-fingerprint: expected 16 to 64 hex digits (spaces and colons allowed)"
        )
    return fp


def format_fingerprint(fp: str) -> str:
    """Groups of four for reading out loud: ``ab12 cd34 …``."""
    return " ".join(fp[i : i + 4] for i in range(0, len(fp), 4))


def issue_bundle(body: dict[str, Any], signer: Ed25519PrivateKey) -> bytes:
    missing = BODY_FIELDS - set(body)
    if missing:
        raise EnrolmentError(f"bundle: field {sorted(missing)[0]!r} missing")
    return sign_document(BUNDLE_TYPE, body, signer)


@dataclass(frozen=True)
class EnrolmentBundle:
    """A bundle whose root was confirmed and whose signature verified."""

    device_id: str
    issued_at: int
    expires_at: int
    request_sha256: str
    device_signing_key_id: str
    device_cert_pem: bytes
    broker_ca_pem: bytes
    broker_host: str
    broker_port: int
    hub_files: dict[str, bytes]
    root: Ed25519PublicKey
    root_fingerprint: str
    signer: KeyCertificate


def _str(body: dict[str, Any], name: str) -> str:
    v = body.get(name)
    if not isinstance(v, str) or not v:
        raise BundleRefused(f"bundle.{name}: missing or not a string")
    return v


def _int(body: dict[str, Any], name: str) -> int:
    v = body.get(name)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise BundleRefused(f"bundle.{name}: must be a non-negative integer")
    return v


class BundleCandidate:
    """A parsed but not yet trusted bundle: read its root fingerprint, then ``verify``."""

    def __init__(self, data: bytes) -> None:
        try:
            ptype, body_bytes, _ = parse_envelope(data)
        except DocumentError as exc:
            raise BundleRefused(f"bundle: {exc}") from exc
        if ptype != BUNDLE_TYPE:
            raise BundleRefused(f"bundle: type is {ptype[:80]!r}, not an enrolment bundle")
        try:
            body = loads_untrusted(body_bytes)
        except UntrustedJsonError as exc:
            raise BundleRefused(f"bundle: body is not usable JSON ({exc})") from exc
        if not isinstance(body, dict):
            raise BundleRefused("bundle: body is not a JSON object")
        files = body.get("hub_files")
        if not isinstance(files, dict) or ROOT_PUBLIC_FILE not in files:
            raise BundleRefused(f"bundle.hub_files: no {ROOT_PUBLIC_FILE}")
        try:
            root_pem = base64.b64decode(str(files[ROOT_PUBLIC_FILE]), validate=True)
            root = serialization.load_pem_public_key(root_pem)
        except (binascii.Error, ValueError) as exc:
            raise BundleRefused(f"bundle: {ROOT_PUBLIC_FILE} is not a PEM public key") from exc
        if not isinstance(root, Ed25519PublicKey):
            raise BundleRefused(f"bundle: {ROOT_PUBLIC_FILE} is not an Ed25519 key")
        self._data = data
        self.root = root
        self.root_fingerprint = key_id(root)
        self.claimed_device_id = str(body.get("device_id", ""))[:70]

    def verify(
        self,
        confirmed_fingerprint: str,
        *,
        device_signing_key_id: str,
        now: float,
        clock_synchronised: bool,
    ) -> EnrolmentBundle:
        """Check the pin, the supervisor certificate and the signature, then the body."""
        fp = normalise_fingerprint(confirmed_fingerprint)
        if not self.root_fingerprint.startswith(fp):
            raise BundleRefused(
                f"bundle: hub root fingerprint is {format_fingerprint(self.root_fingerprint)}, "
                f"not the confirmed {format_fingerprint(fp)}; do not install this bundle"
            )
        _, body_bytes, _ = parse_envelope(self._data)
        body = json.loads(body_bytes)
        try:
            cert_doc = base64.b64decode(str(body.get("signer_certificate")), validate=True)
            signer = open_certificate(cert_doc, self.root)
        except (binascii.Error, ValueError) as exc:
            raise BundleRefused("bundle.signer_certificate: not base64") from exc
        except CertificateError as exc:
            raise BundleRefused(f"bundle.signer_certificate: {exc}") from exc
        if signer.role != ROLE_SUPERVISOR:
            raise BundleRefused(f"bundle: signed by a {signer.role} key; a supervisor must approve")
        finder = {signer.key_id: signer.signing_key()}.get
        try:
            doc = open_document(self._data, BUNDLE_TYPE, finder)
        except DocumentError as exc:
            raise BundleRefused(f"bundle: {exc}") from exc
        body = doc.body
        if set(body) != BODY_FIELDS:
            odd = sorted(set(body) ^ BODY_FIELDS)[0]
            raise BundleRefused(f"bundle: field {odd!r} missing or unknown")
        hub_files = self._hub_files(body["hub_files"])
        rev = hub_files.get(REVOCATIONS_FILE)
        if rev is not None:
            try:
                revoked = open_revocation_list(rev, self.root).revoked_key_ids
            except CertificateError as exc:
                raise BundleRefused(f"bundle: {REVOCATIONS_FILE}: {exc}") from exc
            if signer.key_id in revoked:
                raise BundleRefused(f"bundle: signer {signer.subject} is revoked")
        device_id = _str(body, "device_id")
        if not DEVICE_ID_RE.fullmatch(device_id):
            raise BundleRefused("bundle.device_id: not a valid device id")
        if _str(body, "device_signing_key_id") != device_signing_key_id:
            raise BundleRefused(
                "bundle: made for another device's keys (its request was not made here)"
            )
        issued, expires = _int(body, "issued_at"), _int(body, "expires_at")
        if clock_synchronised:
            if not signer.valid_at(now):
                raise BundleRefused(f"bundle: signer certificate {signer.subject} is not valid now")
            if now >= expires:
                raise BundleRefused("bundle: expired; ask the hub for a new approval")
        host, port = parse_broker_url(_str(body, "broker_url"))
        cfg = body["device_config"]
        if not isinstance(cfg, dict) or cfg.get("device") != {"id": device_id}:
            raise BundleRefused("bundle.device_config: does not name this device id")
        return EnrolmentBundle(
            device_id=device_id,
            issued_at=issued,
            expires_at=expires,
            request_sha256=_str(body, "request_sha256"),
            device_signing_key_id=device_signing_key_id,
            device_cert_pem=_str(body, "device_cert_pem").encode("ascii", "replace"),
            broker_ca_pem=_str(body, "broker_ca_pem").encode("ascii", "replace"),
            broker_host=host,
            broker_port=port,
            hub_files=hub_files,
            root=self.root,
            root_fingerprint=self.root_fingerprint,
            signer=signer,
        )

    def _hub_files(self, raw: object) -> dict[str, bytes]:
        if not isinstance(raw, dict):
            raise BundleRefused("bundle.hub_files: not an object")
        out: dict[str, bytes] = {}
        for name, content in raw.items():
            # These names become paths under keys_dir: nothing but the known layout.
            if not isinstance(name, str) or not _HUB_FILE_RE.fullmatch(name):
                raise BundleRefused(f"bundle.hub_files: unexpected file {str(name)[:80]!r}")
            try:
                out[name] = base64.b64decode(str(content), validate=True)
            except binascii.Error as exc:
                raise BundleRefused(f"bundle.hub_files[{name}]: not base64") from exc
        for name, content in out.items():
            if name.startswith(CERTIFICATES_DIR + "/"):
                try:
                    open_certificate(content, self.root)
                except CertificateError as exc:
                    raise BundleRefused(f"bundle.hub_files[{name}]: {exc}") from exc
        return out


def encode_file(data: bytes) -> str:
    return b64e(data)
