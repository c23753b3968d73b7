"""Device side, step 2: install a verified bundle into keys_dir and the config, then check it.

Files written under ``keys_dir`` (the directory is made 0700)::

    device-cert.pem                  TLS client certificate issued by the hub   0644
    broker-ca.pem                    CA of the broker's certificate             0644
    hub-root-pub.pem, hub-certificates/*.cert.json, hub-revocations.json     0644

The private keys made at ``enrol request`` (0600) are never touched. A revocation list
already held with a higher version is kept (never a downgrade).

The config file gets the keys the bundle decides (device id, broker host and port, the
TLS file paths, ``paths.keys_dir``); every other setting in an existing file is kept.
An existing file that sets one of those keys differently is changed only with
``force=True``, except while it still carries the example device id (a fresh install).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from agent.config import DeviceSection, parse_config
from agent.errors import ConfigError, LfrError
from agent.provisioning.enrolment_bundle import BundleRefused, EnrolmentBundle
from agent.provisioning.enrolment_request import (
    TLS_KEY_FILE,
    EnrolmentError,
    ensure_tls_key,
    hand_to_service_user,
    prepare_keys_dir,
)
from agent.trust.device_keys import load_device_keys, load_device_signing_public
from agent.trust.hub_trust_store import REVOCATIONS_FILE, ROOT_PUBLIC_FILE, HubTrustStore
from agent.trust.key_certificates import CertificateError, open_revocation_list
from agent.trust.key_files import load_public_key, write_atomic
from agent.trust.signed_document import key_id

CERT_FILE = "device-cert.pem"
CA_FILE = "broker-ca.pem"


@dataclass(frozen=True)
class InstallResult:
    written: list[Path]
    config_path: Path
    config_changes: list[str]  # "device.id: 'old' → 'new'"
    problems: list[str]  # from check_enrolment; empty when all is well


def device_signing_key_id(keys_dir: Path) -> str:
    return key_id(load_device_signing_public(keys_dir))


def installed_root_fingerprint(keys_dir: Path) -> str | None:
    """The fingerprint of the hub root this device already trusts, if any."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = keys_dir / ROOT_PUBLIC_FILE
    if not path.exists():
        return None
    return key_id(load_public_key(path, Ed25519PublicKey))  # type: ignore[type-abstract]


def _placeholder_device_id() -> str:
    field = {f.name: f for f in dataclasses.fields(DeviceSection)}["id"]
    return str(field.metadata["example"])


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise EnrolmentError(f"config: cannot rewrite a value of type {type(value).__name__}")


def render_config(raw: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# lfr-agent configuration (device id and broker written by 'lfr-agent enrol complete').",
        "# Every key is documented in 'lfr-agent config example'.",
    ]
    for section, table in raw.items():
        if not isinstance(table, dict):
            raise EnrolmentError(f"config: {section} is not a table")
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def merge_config(
    existing: dict[str, Any] | None, owned: dict[tuple[str, str], Any], force: bool
) -> tuple[dict[str, Any], list[str]]:
    """Set the bundle-owned keys in ``existing``; refuse silent changes without ``force``."""
    raw: dict[str, Any] = {k: dict(v) for k, v in (existing or {}).items() if isinstance(v, dict)}
    fresh = existing is None or raw.get("device", {}).get("id") == _placeholder_device_id()
    changes, conflicts = [], []
    for (section, key), value in owned.items():
        old = raw.get(section, {}).get(key)
        if old == value:
            continue
        if old is not None:
            changes.append(f"{section}.{key}: {old!r} → {value!r}")
            conflicts.append(f"{section}.{key}")
        raw.setdefault(section, {})[key] = value
    if conflicts and not fresh and not force:
        raise EnrolmentError(
            f"enrol: the config sets {', '.join(conflicts)} differently from the bundle; "
            "rerun with --force to update them (all other settings are kept)"
        )
    return raw, changes


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnrolmentError(f"enrol: cannot read config {path} ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise EnrolmentError(f"enrol: config {path} is not valid TOML ({exc})") from exc


def _keep_newer_revocations(
    keys_dir: Path, bundle: EnrolmentBundle, files: dict[str, bytes]
) -> None:
    current = keys_dir / REVOCATIONS_FILE
    new = files.get(REVOCATIONS_FILE)
    if new is None or not current.exists():
        return
    try:
        held = open_revocation_list(current.read_bytes(), bundle.root).version
    except (CertificateError, OSError):
        return  # unreadable or from another root: the bundle's list replaces it
    if held >= open_revocation_list(new, bundle.root).version:
        del files[REVOCATIONS_FILE]


def install_bundle(
    bundle: EnrolmentBundle,
    keys_dir: Path,
    config_path: Path,
    *,
    force: bool = False,
    now: float,
    clock_synchronised: bool,
) -> InstallResult:
    """Write the bundle's files and the config, then run :func:`check_enrolment`."""
    prepare_keys_dir(keys_dir)
    # The TLS key must be the one the certificate was issued for; check before writing.
    tls_key, _ = ensure_tls_key(keys_dir)
    cert = _load_cert(bundle.device_cert_pem, "bundle certificate")
    if cert.public_key() != tls_key.public_key():
        raise BundleRefused(
            f"bundle: its certificate is not for {keys_dir / TLS_KEY_FILE} "
            "(was the request made on this device with these keys?)"
        )
    existing = _read_config(config_path)
    owned: dict[tuple[str, str], Any] = {
        ("device", "id"): bundle.device_id,
        ("paths", "keys_dir"): str(keys_dir),
        ("mqtt", "host"): bundle.broker_host,
        ("mqtt", "port"): bundle.broker_port,
        ("mqtt", "ca_file"): str(keys_dir / CA_FILE),
        ("mqtt", "cert_file"): str(keys_dir / CERT_FILE),
        ("mqtt", "key_file"): str(keys_dir / TLS_KEY_FILE),
    }
    raw, changes = merge_config(existing, owned, force)
    try:
        parse_config(raw, source=config_path)
    except ConfigError as exc:
        raise EnrolmentError(f"enrol: the resulting config would be invalid: {exc}") from exc
    files = dict(bundle.hub_files)
    _keep_newer_revocations(keys_dir, bundle, files)
    files[CERT_FILE] = bundle.device_cert_pem
    files[CA_FILE] = bundle.broker_ca_pem
    written = []
    for rel, content in files.items():
        dest = keys_dir / rel
        write_atomic(dest, content, 0o644)
        written.append(dest)
    try:
        write_atomic(config_path, render_config(raw).encode("utf-8"), 0o644)
    except OSError as exc:
        raise EnrolmentError(f"enrol: cannot write config {config_path} ({exc.strerror})") from exc
    hand_to_service_user(keys_dir, *written, *{p.parent for p in written})
    problems = check_enrolment(
        keys_dir,
        bundle.device_id,
        keys_dir / CA_FILE,
        keys_dir / CERT_FILE,
        keys_dir / TLS_KEY_FILE,
        now=now,
        clock_synchronised=clock_synchronised,
    )
    return InstallResult(written, config_path, changes, problems)


def _load_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise BundleRefused(f"{what}: not a PEM certificate") from exc


def check_enrolment(
    keys_dir: Path,
    device_id: str,
    ca_file: Path,
    cert_file: Path,
    key_file: Path,
    *,
    now: float,
    clock_synchronised: bool,
) -> list[str]:
    """Everything the agent needs from enrolment is present and consistent.

    Returns one line per problem (empty: enrolled). Time windows are checked only
    with a synchronised clock.
    """
    problems: list[str] = []
    try:
        load_device_keys(keys_dir)
    except LfrError as exc:
        problems.append(str(exc))
    try:
        ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except FileNotFoundError as exc:
        problems.append(f"{exc.filename}: missing")
        return problems
    except PermissionError as exc:
        problems.append(f"{exc.filename}: permission denied")
        return problems
    except (ValueError, TypeError) as exc:
        problems.append(f"TLS files: not valid PEM ({exc})")
        return problems
    if key_file.stat().st_mode & 0o077:
        problems.append(f"{key_file}: mode {key_file.stat().st_mode & 0o777:04o} (want 0600)")
    if cert.public_key() != key.public_key():
        problems.append(f"{cert_file}: does not match the TLS key {key_file}")
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cns != [device_id]:
        problems.append(f"{cert_file}: Common Name {cns} is not the device id {device_id!r}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        problems.append(f"{cert_file}: not issued by the broker CA {ca_file}")
    if clock_synchronised:
        t = dt.datetime.fromtimestamp(now, dt.UTC)
        if not cert.not_valid_before_utc <= t < cert.not_valid_after_utc:
            problems.append(
                f"{cert_file}: not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} "
                f"to {cert.not_valid_after_utc:%Y-%m-%d})"
            )
    try:
        trust = HubTrustStore.load(keys_dir)
        if clock_synchronised:
            trust.alert_key(now)
    except LfrError as exc:
        problems.append(f"hub trust: {exc}")
    return problems
