"""Device side, step 1: make the device's keys (never replacing existing ones) and a request.

The request carries only public material and facts about the board; private keys
never leave ``keys_dir``:

- the Ed25519 signing key and X25519 key of :mod:`agent.trust.device_keys`,
- a TLS key (ECDSA P-256, ``device-tls-key.pem``) and a certificate signing request
  for it whose Common Name is the device id (the broker user name),
- hardware facts (board model, serial, kernel, architecture, camera nodes) so the hub
  operator can tell which board is asking.

The request is a signed document (``application/vnd.lfr.enrolment-request+json; v=1``)
signed by the device's own signing key: it proves the device holds that key, and the
CSR's signature proves it holds the TLS key. Its fingerprint (SHA-256 of the file) is
printed on both sides so technician and operator can compare it over the phone.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.x509.oid import NameOID

from agent import __version__
from agent.errors import LfrError, UsageError
from agent.protocol.fields import DEVICE_ID_RE as DEVICE_ID_RE
from agent.trust.device_keys import (
    EXCHANGE_KEY_FILE,
    SIGNING_KEY_FILE,
    DeviceKeys,
    generate_device_keys,
    generation_interrupted,
    load_device_keys,
)
from agent.trust.key_files import KeyFileError, write_atomic
from agent.trust.signed_document import key_id, sign_document

REQUEST_TYPE = "application/vnd.lfr.enrolment-request+json; v=1"
TLS_KEY_FILE = "device-tls-key.pem"
SERVICE_USER = "lfr-agent"

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
DMI_PRODUCT = Path("/sys/class/dmi/id/product_name")
CPUINFO = Path("/proc/cpuinfo")
MACHINE_ID = Path("/etc/machine-id")
DEV_DIR = Path("/dev")


class EnrolmentError(LfrError):
    """An enrolment request or bundle is invalid, or cannot be made or installed."""

    exit_code = 2


@dataclass(frozen=True)
class HardwareFacts:
    model: str
    serial: str
    kernel: str
    arch: str
    cameras: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "serial": self.serial,
            "kernel": self.kernel,
            "arch": self.arch,
            "cameras": list(self.cameras),
        }


@dataclass(frozen=True)
class MadeRequest:
    path: Path
    device_id: str
    fingerprint: str  # hex SHA-256 of the request file
    keys_created: bool
    tls_key_created: bool
    facts: HardwareFacts


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\x00", b"").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def read_hardware_facts(
    device_tree_model: Path = DEVICE_TREE_MODEL,
    dmi_product: Path = DMI_PRODUCT,
    cpuinfo: Path = CPUINFO,
    machine_id: Path = MACHINE_ID,
    dev_dir: Path = DEV_DIR,
) -> HardwareFacts:
    """What board this is; a fact that cannot be read is ``"unknown"``, never an error."""
    model = _read_text(device_tree_model) or _read_text(dmi_product) or "unknown"
    serial = ""
    for line in _read_text(cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "serial" and value.strip():
            serial = value.strip()
    if not serial:
        mid = _read_text(machine_id)
        serial = f"machine-id:{mid}" if mid else "unknown"
    try:
        cameras = sorted(p.name for p in dev_dir.glob("video*"))
    except OSError:
        cameras = []
    return HardwareFacts(model[:200], serial[:200], platform.release(), platform.machine(), cameras)


def hand_to_service_user(*paths: Path) -> None:
    """When run as root, give files to the service user so the agent can read its keys."""
    if os.geteuid() != 0:
        return
    import pwd

    try:
        pw = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return  # no service user on this system (a workstation, a test root)
    for p in paths:
        if p.exists():
            os.chown(p, pw.pw_uid, pw.pw_gid)


def prepare_keys_dir(keys_dir: Path) -> None:
    """Create ``keys_dir`` 0700 (or tighten it): it holds private keys."""
    try:
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(keys_dir, 0o700)
    except OSError as exc:
        raise EnrolmentError(f"enrol: cannot prepare {keys_dir} ({exc.strerror})") from exc


def ensure_device_keys(keys_dir: Path) -> tuple[DeviceKeys, bool]:
    """Load the device keys, or create them when neither exists. Never replaces a key,
    except an unused part-set a power cut left while the keys were being made."""
    if generation_interrupted(keys_dir):
        return generate_device_keys(keys_dir), True
    present = [n for n in (SIGNING_KEY_FILE, EXCHANGE_KEY_FILE) if (keys_dir / n).exists()]
    if len(present) == 2:
        return load_device_keys(keys_dir), False
    if present:
        missing = ({SIGNING_KEY_FILE, EXCHANGE_KEY_FILE} - set(present)).pop()
        raise EnrolmentError(
            f"enrol: {keys_dir / present[0]} exists but {missing} does not; "
            "restore the missing key from backup (keys are never replaced automatically)"
        )
    return generate_device_keys(keys_dir), True


def ensure_tls_key(keys_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, bool]:
    """Load the TLS client key, or create it (ECDSA P-256, 0600) when absent."""
    path = keys_dir / TLS_KEY_FILE
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyFileError(f"key: {path}: mode {mode:04o} is too open (want 0600)")
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"key: {path}: not a PEM private key") from exc
        except PermissionError as exc:
            raise KeyFileError(f"key: {path}: permission denied") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyFileError(f"key: {path}: is not an EC private key")
        return key, False
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(path, pem, 0o600)
    return key, True


def make_csr(device_id: str, tls_key: ec.EllipticCurvePrivateKey) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .sign(tls_key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _pub_pem(key: Ed25519PublicKey | X25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def write_public_file(path: Path, data: bytes) -> None:
    """Write a file of public data atomically without chmod.

    The boot partition is FAT, where changing a file's mode fails with EPERM, so the
    mode comes from creation (0644 less the umask) instead of a later ``fchmod``.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_device_id(device_id: str) -> str:
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise UsageError(
            f"enrol: device id {device_id[:70]!r}: use 1–63 lower-case letters, digits and -, "
            "starting with a letter or digit"
        )
    return device_id


def make_request(
    device_id: str,
    keys_dir: Path,
    out: Path,
    *,
    facts: HardwareFacts | None = None,
    now: int | None = None,
) -> MadeRequest:
    """Ensure the keys exist in ``keys_dir`` and write the signed request to ``out``."""
    check_device_id(device_id)
    prepare_keys_dir(keys_dir)
    keys, created = ensure_device_keys(keys_dir)
    tls_key, tls_created = ensure_tls_key(keys_dir)
    facts = facts or read_hardware_facts()
    body = {
        "device_id": device_id,
        "created_at": int(time.time()) if now is None else now,
        "agent_version": __version__,
        "signing_public_pem": _pub_pem(keys.signing_public),
        "signing_key_id": key_id(keys.signing_public),
        "exchange_public_pem": _pub_pem(keys.exchange_public),
        "tls_csr_pem": make_csr(device_id, tls_key).decode("ascii"),
        "hardware": facts.to_dict(),
    }
    data = sign_document(REQUEST_TYPE, body, keys.signing)
    try:
        write_public_file(out, data)
    except OSError as exc:
        raise EnrolmentError(f"enrol: cannot write {out} ({exc.strerror})") from exc
    hand_to_service_user(keys_dir, *sorted(keys_dir.glob("device-*.pem")))
    return MadeRequest(
        out, device_id, hashlib.sha256(data).hexdigest(), created, tls_created, facts
    )
