"""The broker PKI: a private CA, the broker's server certificate and client certificates.

Every MQTT client authenticates with a certificate whose Common Name is its identity;
mosquitto (``use_identity_as_username``) turns the CN into the user name the ACL
checks, so a device certificate with CN ``lfr-demo-01`` can only use
``lfr/v1/lfr-demo-01/…``. Hub clients get CN ``hub.<name>`` and broker bridges
``bridge.<name>`` — a dot can never occur in a device id, so no device can be issued
either identity.

Keys are ECDSA P-256 (accepted by every TLS stack mosquitto and paho use). Files in
the PKI folder::

    ca.pem  ca-key.pem                 the CA (keep ca-key.pem offline)
    crl.pem                            revoked client certificates (mosquitto ``crlfile``)
    broker-cert.pem  broker-key.pem    the broker's server certificate
    clients/<cn>-cert.pem  clients/<cn>-key.pem

The revocation list is signed by the CA and valid until the CA itself expires: OpenSSL
refuses every client once a configured CRL is past its next-update time, so a list that
lapsed would lock the whole fleet out. mosquitto re-reads it on SIGHUP (``systemctl reload
mosquitto``); it is checked at each TLS handshake, so a connection already open is closed
by other means (``agent/hub/keys/broker_admin.py`` removes the client's rights and kicks it).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.errors import LfrError
from agent.trust.key_files import write_atomic

DEVICE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
HUB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,58}$")


class PkiError(LfrError):
    """The PKI folder is missing pieces, or a request would overwrite or misuse them."""

    exit_code = 2


@dataclass(frozen=True)
class IssuedCert:
    common_name: str
    cert_path: Path
    key_path: Path


def bridge_identity(name: str) -> str:
    """The certificate CN of broker bridge ``name`` (a broker of the fleet connecting to
    another; its ACL entry may use every device topic)."""
    if not HUB_NAME_RE.fullmatch(name):
        raise PkiError(f"pki: bridge name {name[:70]!r}: use lower-case letters, digits and -")
    return f"bridge.{name}"


def hub_identity(name: str) -> str:
    """The certificate CN (and broker user name) of hub client ``name``."""
    if not HUB_NAME_RE.fullmatch(name):
        raise PkiError(f"pki: hub name {name[:70]!r}: use lower-case letters, digits and -")
    return f"hub.{name}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(path, pem, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    write_atomic(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def ca_paths(pki_dir: Path) -> tuple[Path, Path]:
    return pki_dir / "ca.pem", pki_dir / "ca-key.pem"


def crl_path(pki_dir: Path) -> Path:
    return pki_dir / "crl.pem"


def init_ca(
    pki_dir: Path, *, name: str = "lfr broker CA", days: int = 3650, force: bool = False
) -> Path:
    """Create the CA key and self-signed certificate; returns the CA certificate path."""
    cert_path, key_path = ca_paths(pki_dir)
    if (cert_path.exists() or key_path.exists()) and not force:
        raise PkiError(f"pki: {pki_dir} already has a CA (use --force to replace it)")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    _write_crl(pki_dir, cert, key, [])
    return cert_path


def _load_ca(pki_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = ca_paths(pki_dir)
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise PkiError(f"pki: {exc.filename}: not found (run 'lfr-hub pki init' first)") from exc
    except ValueError as exc:
        raise PkiError(f"pki: {pki_dir}: the CA files are not valid PEM") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"pki: {key_path}: not an EC private key")
    return cert, key


def _issue(
    pki_dir: Path,
    common_name: str,
    cert_path: Path,
    key_path: Path,
    *,
    server_names: list[str] | None,
    days: int,
    force: bool,
) -> IssuedCert:
    if (cert_path.exists() or key_path.exists()) and not force:
        raise PkiError(f"pki: {cert_path} already exists (use --force to replace it)")
    ca_cert, ca_key = _load_ca(pki_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server_names:
        alt: list[x509.GeneralName] = []
        for n in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return IssuedCert(common_name, cert_path, key_path)


def issue_broker_cert(
    pki_dir: Path, names: list[str], *, days: int = 825, force: bool = False
) -> IssuedCert:
    """The broker's server certificate for host ``names`` (DNS names or IP addresses)."""
    if not names:
        raise PkiError("pki: the broker certificate needs at least one host name or address")
    return _issue(
        pki_dir,
        names[0],
        pki_dir / "broker-cert.pem",
        pki_dir / "broker-key.pem",
        server_names=names,
        days=days,
        force=force,
    )


def issue_console_cert(
    pki_dir: Path, names: list[str], *, days: int = 825, force: bool = False
) -> IssuedCert:
    """The web console's HTTPS certificate for host ``names``: operators' browsers trust
    the hub's CA (``ca.pem``) instead of a public one."""
    if not names:
        raise PkiError("pki: the console certificate needs at least one host name or address")
    return _issue(
        pki_dir,
        names[0],
        pki_dir / "console-cert.pem",
        pki_dir / "console-key.pem",
        server_names=names,
        days=days,
        force=force,
    )


def issue_client_cert(
    pki_dir: Path, common_name: str, *, days: int = 825, force: bool = False
) -> IssuedCert:
    """A client certificate whose CN is a device id, a hub identity (``hub.<name>``) or
    a bridge identity (``bridge.<name>``)."""
    prefix, dot, name = common_name.partition(".")
    is_named = dot and prefix in ("hub", "bridge") and HUB_NAME_RE.fullmatch(name)
    if not (DEVICE_ID_RE.fullmatch(common_name) or is_named):
        raise PkiError(
            f"pki: client name {common_name[:70]!r}: must be a device id "
            "(lower-case letters, digits, -), hub.<name> or bridge.<name>"
        )
    return _issue(
        pki_dir,
        common_name,
        pki_dir / "clients" / f"{common_name}-cert.pem",
        pki_dir / "clients" / f"{common_name}-key.pem",
        server_names=None,
        days=days,
        force=force,
    )


@dataclass(frozen=True)
class RevokedCert:
    serial: int
    revoked_at: dt.datetime


def _write_crl(
    pki_dir: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    revoked: list[RevokedCert],
) -> Path:
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        # Valid as long as the CA: a lapsed list would make OpenSSL refuse every client.
        .next_update(max(ca_cert.not_valid_after_utc, now + dt.timedelta(days=1)))
    )
    for r in sorted(revoked, key=lambda r: r.serial):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(r.serial)
            .revocation_date(r.revoked_at)
            .build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    path = crl_path(pki_dir)
    write_atomic(path, crl.public_bytes(serialization.Encoding.PEM), 0o644)
    return path


def revoked_serials(pki_dir: Path) -> list[RevokedCert]:
    """The entries of the current revocation list (none if the folder has no list yet)."""
    path = crl_path(pki_dir)
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise PkiError(f"pki: {path}: not a PEM certificate revocation list") from exc
    ca_cert, _ = _load_ca(pki_dir)
    if not crl.is_signature_valid(ca_cert.public_key()):  # type: ignore[arg-type]
        raise PkiError(f"pki: {path}: not signed by this CA")
    return [RevokedCert(r.serial_number, r.revocation_date_utc) for r in crl]


def ensure_crl(pki_dir: Path) -> Path:
    """Write an empty revocation list if the folder has none (PKIs made before lists existed)."""
    path = crl_path(pki_dir)
    if not path.exists():
        ca_cert, ca_key = _load_ca(pki_dir)
        _write_crl(pki_dir, ca_cert, ca_key, [])
    return path


def revoke_certificate(pki_dir: Path, cert: x509.Certificate) -> bool:
    """Add ``cert`` to the revocation list; False if it was on it already.

    Raises PkiError for a certificate this CA did not issue.
    """
    ca_cert, ca_key = _load_ca(pki_dir)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise PkiError("pki: the certificate was not issued by this CA") from exc
    current = revoked_serials(pki_dir)
    if any(r.serial == cert.serial_number for r in current):
        return False
    _write_crl(pki_dir, ca_cert, ca_key, [*current, RevokedCert(cert.serial_number, _now())])
    return True


def is_revoked(pki_dir: Path, cert: x509.Certificate) -> bool:
    return any(r.serial == cert.serial_number for r in revoked_serials(pki_dir))


def load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError as exc:
        raise PkiError(f"pki: {path}: not found") from exc
    except ValueError as exc:
        raise PkiError(f"pki: {path}: not a PEM certificate") from exc


def certificate_common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def client_certificates(pki_dir: Path, common_name: str) -> list[x509.Certificate]:
    """The client certificates issued in this folder to ``common_name`` (``pki issue``)."""
    path = pki_dir / "clients" / f"{common_name}-cert.pem"
    return [load_certificate(path)] if path.is_file() else []
