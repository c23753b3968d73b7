"""Hub side of enrolment: check a device's request and approve it into a signed bundle.

Approving a request:

1. verifies it (signed by the device signing key it carries; the CSR is self-consistent
   and names the device id as its Common Name),
2. issues the device's TLS client certificate from the broker CA (``pki_dir/ca.pem``,
   ``ca-key.pem``) for the public key in the CSR: the private key never left the device,
3. records the device in the hub registry ``<hub-dir>/devices/<id>/``::

       device-ed25519-pub.pem   verifies its alerts and audit checkpoints
       device-x25519-pub.pem    watchlists are sealed to it (read by 'lfr-hub watchlist build')
       device-cert.pem          the issued TLS certificate
       enrolment-request.json   the request as received
       device.json              hardware facts, fingerprints, who approved it and when

   and registers the signing key in the alert database, where the alert receiver looks
   it up,
4. returns the bundle (:mod:`agent.provisioning.enrolment_bundle`) signed by a
   supervisor key.

A device id already enrolled with a different signing key is refused unless
``replace=True`` (a re-flashed board makes new keys; re-approving it is a decision).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.keys.pki import ca_paths
from agent.hub.store.alert_store import AlertStore
from agent.provisioning.enrolment_bundle import (
    BUNDLE_VALID_S,
    encode_file,
    issue_bundle,
    parse_broker_url,
)
from agent.provisioning.enrolment_request import DEVICE_ID_RE, REQUEST_TYPE, EnrolmentError
from agent.trust.device_keys import EXCHANGE_PUB_FILE, SIGNING_PUB_FILE
from agent.trust.key_certificates import ROLE_SUPERVISOR
from agent.trust.key_files import write_atomic
from agent.trust.signed_document import (
    DocumentError,
    UntrustedJsonError,
    canonical_json,
    key_id,
    loads_untrusted,
    open_document,
    parse_envelope,
)

DEVICES_DIR = "devices"
DEVICE_CERT_FILE = "device-cert.pem"
#: Written by ``lfr-hub device withdraw`` (``device_withdrawal.py``): withdrawn for good.
WITHDRAWN_FILE = "withdrawn.json"
REQUEST_FILE = "enrolment-request.json"
RECORD_FILE = "device.json"
REQUEST_FIELDS = {
    "device_id",
    "created_at",
    "agent_version",
    "signing_public_pem",
    "signing_key_id",
    "exchange_public_pem",
    "tls_csr_pem",
    "hardware",
}


class RequestRefused(EnrolmentError):
    """An enrolment request is malformed or does not verify."""

    exit_code = 1


@dataclass(frozen=True)
class EnrolmentRequest:
    device_id: str
    signing_public: Ed25519PublicKey
    exchange_public: X25519PublicKey
    csr: x509.CertificateSigningRequest
    hardware: dict[str, Any]
    created_at: int
    fingerprint: str  # hex SHA-256 of the request file
    data: bytes


@dataclass(frozen=True)
class Approval:
    device_id: str
    bundle: bytes
    cert_not_after: dt.datetime
    root_fingerprint: str
    device_dir: Path


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    approved_at: int
    approved_by: str
    cert_not_after: str
    hardware: dict[str, Any]
    request_fingerprint: str


def _load_pub(pem: object, kind: type[Any], what: str) -> Any:
    if not isinstance(pem, str):
        raise RequestRefused(f"request.{what}: missing")
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise RequestRefused(f"request.{what}: not a PEM public key") from exc
    if not isinstance(key, kind):
        raise RequestRefused(f"request.{what}: wrong key type")
    return key


def open_request(data: bytes) -> EnrolmentRequest:
    """Verify a request file's content; raise RequestRefused naming the first problem."""
    try:
        ptype, body_bytes, _ = parse_envelope(data)
        if ptype != REQUEST_TYPE:
            raise RequestRefused(f"request: type is {ptype[:80]!r}, not an enrolment request")
        body = loads_untrusted(body_bytes)
    except DocumentError as exc:
        raise RequestRefused(f"request: {exc}") from exc
    except UntrustedJsonError as exc:
        raise RequestRefused(f"request: body is not usable JSON ({exc})") from exc
    if not isinstance(body, dict) or set(body) != REQUEST_FIELDS:
        raise RequestRefused("request: fields missing or unknown (made by another version?)")
    signing = _load_pub(body["signing_public_pem"], Ed25519PublicKey, "signing_public_pem")
    kid = key_id(signing)
    try:
        doc = open_document(data, REQUEST_TYPE, {kid: signing}.get)
    except DocumentError as exc:
        raise RequestRefused(f"request: {exc}") from exc
    body = doc.body
    if body["signing_key_id"] != kid:
        raise RequestRefused("request.signing_key_id: does not match the signing key")
    device_id = body["device_id"]
    if not isinstance(device_id, str) or not DEVICE_ID_RE.fullmatch(device_id):
        raise RequestRefused("request.device_id: not a valid device id")
    exchange = _load_pub(body["exchange_public_pem"], X25519PublicKey, "exchange_public_pem")
    try:
        csr = x509.load_pem_x509_csr(str(body["tls_csr_pem"]).encode("ascii"))
    except ValueError as exc:
        raise RequestRefused("request.tls_csr_pem: not a PEM certificate request") from exc
    if not csr.is_signature_valid:
        raise RequestRefused("request.tls_csr_pem: signature does not verify")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or cns[0].value != device_id:
        raise RequestRefused("request.tls_csr_pem: Common Name is not the device id")
    pub = csr.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp256r1":
        raise RequestRefused("request.tls_csr_pem: key is not ECDSA P-256")
    hardware = body["hardware"] if isinstance(body["hardware"], dict) else {}
    created = body["created_at"] if isinstance(body["created_at"], int) else 0
    return EnrolmentRequest(
        device_id,
        signing,
        exchange,
        csr,
        hardware,
        created,
        hashlib.sha256(data).hexdigest(),
        data,
    )


def _load_ca(pki_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = ca_paths(pki_dir)
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise EnrolmentError(
            f"approve: {exc.filename}: not found (run 'lfr-hub pki init' first)"
        ) from exc
    except PermissionError as exc:
        raise EnrolmentError(f"approve: {exc.filename}: permission denied") from exc
    except ValueError as exc:
        raise EnrolmentError(f"approve: {pki_dir}: the CA files are not valid PEM") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise EnrolmentError(f"approve: {key_path}: not an EC private key")
    return cert, key


def issue_device_certificate(
    pki_dir: Path, request: EnrolmentRequest, days: int
) -> tuple[x509.Certificate, bytes]:
    """Sign the CSR's key as a TLS client certificate with CN = device id."""
    ca_cert, ca_key = _load_ca(pki_dir)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, request.device_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(request.csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, ca_cert.public_bytes(serialization.Encoding.PEM)


def device_dir(hub_dir: Path, device_id: str) -> Path:
    return hub_dir / DEVICES_DIR / device_id


def _hub_files(hub_dir: Path) -> dict[str, str]:
    """The device trust export, as the files a device stores under keys_dir."""
    import tempfile

    store = HubKeyStore.open(hub_dir)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        store.export_device_trust(out)
        return {
            str(p.relative_to(out)): encode_file(p.read_bytes())
            for p in sorted(out.rglob("*"))
            if p.is_file()
        }


def approve(
    request: EnrolmentRequest,
    *,
    hub_dir: Path,
    pki_dir: Path,
    operator: str,
    broker_url: str,
    alert_db: str | Path,
    cert_days: int = 825,
    replace: bool = False,
    now: int | None = None,
) -> Approval:
    """Issue the certificate, record the device and return the signed bundle."""
    host, port = parse_broker_url(broker_url)
    if not 1 <= cert_days <= 3650:
        raise EnrolmentError(f"approve: --cert-days must be 1–3650, got {cert_days}")
    store = HubKeyStore.open(hub_dir)
    signer_key, signer_cert = store.operator(operator, "")
    if signer_cert.role != ROLE_SUPERVISOR:
        raise EnrolmentError(
            f"approve: operator {operator!r} is a {signer_cert.role}; "
            "a supervisor must approve devices"
        )
    if signer_cert.key_id in store.revocations().revoked_key_ids:
        raise EnrolmentError(f"approve: operator {operator!r} is revoked")
    folder = device_dir(hub_dir, request.device_id)
    if (folder / WITHDRAWN_FILE).exists():
        raise EnrolmentError(
            f"approve: {request.device_id} was withdrawn for good; enrol the replacement "
            "camera under a new device id"
        )
    known = folder / SIGNING_PUB_FILE
    if known.exists() and not replace:
        old = serialization.load_pem_public_key(known.read_bytes())
        if old != request.signing_public:
            raise EnrolmentError(
                f"approve: {request.device_id} is already enrolled with other keys "
                "(a re-flashed board?); check it is the same device, then use --replace"
            )
    cert, ca_pem = issue_device_certificate(pki_dir, request, cert_days)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    now = int(time.time()) if now is None else now
    body = {
        "device_id": request.device_id,
        "issued_at": now,
        "expires_at": now + BUNDLE_VALID_S,
        "request_sha256": request.fingerprint,
        "device_signing_key_id": key_id(request.signing_public),
        "device_cert_pem": cert_pem.decode("ascii"),
        "broker_ca_pem": ca_pem.decode("ascii"),
        "broker_url": f"mqtts://{host}:{port}",
        "hub_files": _hub_files(hub_dir),
        "signer_certificate": encode_file(signer_cert.document),
        "device_config": {
            "device": {"id": request.device_id},
            "mqtt": {"host": host, "port": port},
        },
    }
    bundle = issue_bundle(body, signer_key)
    _record(folder, request, cert_pem, operator, now, cert.not_valid_after_utc)
    alerts = AlertStore(alert_db)
    try:
        alerts.register_device_key(request.device_id, request.signing_public)
    finally:
        alerts.close()
    return Approval(
        request.device_id, bundle, cert.not_valid_after_utc, key_id(store.root_public()), folder
    )


def _pem(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _record(
    folder: Path,
    request: EnrolmentRequest,
    cert_pem: bytes,
    operator: str,
    now: int,
    not_after: dt.datetime,
) -> None:
    write_atomic(folder / SIGNING_PUB_FILE, _pem(request.signing_public), 0o644)
    write_atomic(folder / EXCHANGE_PUB_FILE, _pem(request.exchange_public), 0o644)
    write_atomic(folder / DEVICE_CERT_FILE, cert_pem, 0o644)
    write_atomic(folder / REQUEST_FILE, request.data, 0o644)
    record = {
        "device_id": request.device_id,
        "approved_at": now,
        "approved_by": operator,
        "cert_not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hardware": request.hardware,
        "request_fingerprint": request.fingerprint,
        "signing_key_id": key_id(request.signing_public),
    }
    write_atomic(folder / RECORD_FILE, canonical_json(record) + b"\n", 0o644)


def list_devices(hub_dir: Path) -> list[DeviceRecord]:
    """Enrolled devices from the registry, by id; an unreadable record is skipped."""
    out = []
    for path in sorted((hub_dir / DEVICES_DIR).glob(f"*/{RECORD_FILE}")):
        try:
            r = json.loads(path.read_bytes())
            out.append(
                DeviceRecord(
                    str(r["device_id"]),
                    int(r["approved_at"]),
                    str(r["approved_by"]),
                    str(r["cert_not_after"]),
                    dict(r.get("hardware") or {}),
                    str(r["request_fingerprint"]),
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out
