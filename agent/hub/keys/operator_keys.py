"""The hub's key store: root, operators, the alert key and the watchlist-signing key.

Layout of the hub key folder (``lfr-hub keys init --dir DIR``)::

    root-key-OFFLINE.pem                 hub root private key: move it to offline media
                                         after init; needed only to add/revoke keys
    hub-root-pub.pem                     root public key          ┐
    hub-certificates/hub-alert.cert.json       alert key cert     │ provisioned to every
    hub-certificates/hub-watchlist.cert.json   watchlist key cert │ device (keys export)
    hub-certificates/hub-evidence.cert.json    evidence key cert  │
    hub-revocations.json                 root-signed revocation list ┘
    hub-alert-x25519-key.pem             alert private key (decrypts alerts and alert clips)
    hub-evidence-x25519-key.pem          evidence private key (decrypts CCTV recording
                                         segments; keep it with the evidence custodian)
    hub-watchlist-ed25519-key.pem        watchlist-signing private key
    operators/NAME-key.pem               operator private keys
    operators/NAME.cert.json             operator certificates (travel inside each token)
    sequences.json                       last sequence issued per device

Private keys are 0600. Sequence numbers are allocated under an exclusive lock
and written atomically before a token is returned, so they never repeat.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.errors import LfrError, UsageError
from agent.trust.hub_trust_store import (
    CERTIFICATE_SUFFIX,
    CERTIFICATES_DIR,
    REVOCATIONS_FILE,
    ROOT_PUBLIC_FILE,
)
from agent.trust.key_certificates import (
    NAME_PATTERN,
    OPERATOR_ROLES,
    ROLE_ALERT,
    ROLE_EVIDENCE,
    ROLE_WATCHLIST,
    CertificateError,
    KeyCertificate,
    RevocationList,
    issue_certificate,
    issue_revocation_list,
    open_certificate,
    open_revocation_list,
)
from agent.trust.key_files import (
    load_private_key,
    load_public_key,
    write_atomic,
    write_private_key,
    write_public_key,
)
from agent.trust.signed_document import canonical_json

ROOT_KEY_FILE = "root-key-OFFLINE.pem"
ALERT_KEY_FILE = "hub-alert-x25519-key.pem"
WATCHLIST_KEY_FILE = "hub-watchlist-ed25519-key.pem"
ALERT_SUBJECT = "hub-alert"
EVIDENCE_KEY_FILE = "hub-evidence-x25519-key.pem"
EVIDENCE_SUBJECT = "hub-evidence"
WATCHLIST_SUBJECT = "hub-watchlist"
OPERATORS_DIR = "operators"
SEQUENCES_FILE = "sequences.json"
DAY = 86400


class HubKeyStoreError(LfrError):
    """The hub key folder is missing, incomplete or inconsistent."""

    exit_code = 2


def _check_name(name: str, what: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise UsageError(f"{what} {name!r}: use lower-case letters, digits, '.', '_' or '-'")


class HubKeyStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    # -- creation -------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        directory: Path,
        operator_name: str,
        operator_role: str = "supervisor",
        operator_valid_days: int = 365,
        hub_keys_valid_days: int = 730,
        now: int | None = None,
    ) -> HubKeyStore:
        """Create the root key, the first operator, the alert and watchlist keys, all certified."""
        _check_name(operator_name, "operator")
        if (directory / ROOT_PUBLIC_FILE).exists():
            raise HubKeyStoreError(f"keys: {directory}: already holds a hub key store")
        now = int(time.time()) if now is None else now
        store = cls(directory)
        root = Ed25519PrivateKey.generate()
        write_private_key(directory / ROOT_KEY_FILE, root)
        write_public_key(directory / ROOT_PUBLIC_FILE, root.public_key())
        alert = X25519PrivateKey.generate()
        evidence = X25519PrivateKey.generate()
        watch = Ed25519PrivateKey.generate()
        write_private_key(directory / ALERT_KEY_FILE, alert)
        write_private_key(directory / EVIDENCE_KEY_FILE, evidence)
        write_private_key(directory / WATCHLIST_KEY_FILE, watch)
        until = now + hub_keys_valid_days * DAY
        for subject, role, pub in (
            (ALERT_SUBJECT, ROLE_ALERT, alert.public_key()),
            (EVIDENCE_SUBJECT, ROLE_EVIDENCE, evidence.public_key()),
            (WATCHLIST_SUBJECT, ROLE_WATCHLIST, watch.public_key()),
        ):
            cert = issue_certificate(root, subject, role, pub, now, until, now)
            write_atomic(store._hub_cert_path(subject), cert, 0o644)
        write_atomic(directory / REVOCATIONS_FILE, issue_revocation_list(root, 1, [], now), 0o644)
        store.add_operator(operator_name, operator_role, operator_valid_days, root, now)
        return store

    @classmethod
    def open(cls, directory: Path) -> HubKeyStore:
        if not (directory / ROOT_PUBLIC_FILE).is_file():
            raise HubKeyStoreError(
                f"keys: {directory}: no hub key store here (run 'lfr-hub keys init --dir DIR')"
            )
        return cls(directory)

    # -- root -----------------------------------------------------------------------
    def root_public(self) -> Ed25519PublicKey:
        return load_public_key(self.dir / ROOT_PUBLIC_FILE, Ed25519PublicKey)  # type: ignore[type-abstract]

    def load_root_key(self, path: Path | None = None) -> Ed25519PrivateKey:
        """The root private key, from ``path`` or the store; it must match hub-root-pub.pem."""
        path = path or self.dir / ROOT_KEY_FILE
        key = load_private_key(path, Ed25519PrivateKey)  # type: ignore[type-abstract]
        if key.public_key() != self.root_public():
            raise HubKeyStoreError(f"keys: {path}: is not this hub's root key")
        return key

    # -- operators ------------------------------------------------------------------
    def _operator_key_path(self, name: str) -> Path:
        return self.dir / OPERATORS_DIR / f"{name}-key.pem"

    def _operator_cert_path(self, name: str) -> Path:
        return self.dir / OPERATORS_DIR / f"{name}{CERTIFICATE_SUFFIX}"

    def _hub_cert_path(self, subject: str) -> Path:
        return self.dir / CERTIFICATES_DIR / f"{subject}{CERTIFICATE_SUFFIX}"

    def add_operator(
        self,
        name: str,
        role: str,
        valid_days: int,
        root_key: Ed25519PrivateKey,
        now: int | None = None,
    ) -> KeyCertificate:
        _check_name(name, "operator")
        if role not in OPERATOR_ROLES:
            raise UsageError(f"operator role {role!r}: must be one of {', '.join(OPERATOR_ROLES)}")
        if not 1 <= valid_days <= 3660:
            raise UsageError(f"--valid-days: must be 1–3660, got {valid_days}")
        if self._operator_key_path(name).exists():
            raise HubKeyStoreError(f"operator {name!r}: already exists")
        now = int(time.time()) if now is None else now
        key = Ed25519PrivateKey.generate()
        cert = issue_certificate(
            root_key, name, role, key.public_key(), now, now + valid_days * DAY, now
        )
        write_private_key(self._operator_key_path(name), key)
        write_atomic(self._operator_cert_path(name), cert, 0o644)
        return open_certificate(cert, self.root_public())

    def operator(self, name: str, passphrase: str) -> tuple[Ed25519PrivateKey, KeyCertificate]:
        """An operator's private key and verified certificate. ``passphrase`` unseals a
        key kept encrypted at rest; a plaintext key file does not need it."""
        _check_name(name, "operator")
        cert_path = self._operator_cert_path(name)
        if not cert_path.exists():
            raise HubKeyStoreError(f"operator {name!r}: not in {self.dir / OPERATORS_DIR}")
        cert = open_certificate(cert_path.read_bytes(), self.root_public())
        key = load_private_key(self._operator_key_path(name), Ed25519PrivateKey)  # type: ignore[type-abstract]
        if key.public_key() != cert.public_key:
            raise HubKeyStoreError(f"operator {name!r}: key does not match its certificate")
        return key, cert

    def operators(self) -> list[KeyCertificate]:
        folder = self.dir / OPERATORS_DIR
        root = self.root_public()
        return [
            open_certificate(p.read_bytes(), root)
            for p in sorted(folder.glob(f"*{CERTIFICATE_SUFFIX}"))
        ]

    def revoke_operator(
        self, name: str, root_key: Ed25519PrivateKey, now: int | None = None
    ) -> RevocationList:
        """Add the operator's key to a new revocation list (version + 1), signed by the root."""
        _, cert = self.operator(name, "")
        current = self.revocations()
        if cert.key_id in current.revoked_key_ids:
            raise HubKeyStoreError(f"operator {name!r}: already revoked")
        now = int(time.time()) if now is None else now
        doc = issue_revocation_list(
            root_key, current.version + 1, current.revoked_key_ids | {cert.key_id}, now
        )
        write_atomic(self.dir / REVOCATIONS_FILE, doc, 0o644)
        return open_revocation_list(doc, self.root_public())

    def revocations(self) -> RevocationList:
        path = self.dir / REVOCATIONS_FILE
        try:
            return open_revocation_list(path.read_bytes(), self.root_public())
        except (OSError, CertificateError) as exc:
            raise HubKeyStoreError(f"keys: {path}: missing or invalid ({exc})") from exc

    # -- hub keys -------------------------------------------------------------------
    def alert_private_key(self) -> X25519PrivateKey:
        return load_private_key(self.dir / ALERT_KEY_FILE, X25519PrivateKey)  # type: ignore[type-abstract]

    def evidence_private_key(self) -> X25519PrivateKey:
        path = self.dir / EVIDENCE_KEY_FILE
        if not path.exists():
            raise HubKeyStoreError(
                f"keys: {path}: no evidence key (run 'lfr-hub keys add-evidence-key')"
            )
        return load_private_key(path, X25519PrivateKey)  # type: ignore[type-abstract]

    def add_evidence_key(
        self, root_key: Ed25519PrivateKey, valid_days: int = 730, now: int | None = None
    ) -> KeyCertificate:
        """Create and certify the evidence key of a key store made before it existed."""
        path = self.dir / EVIDENCE_KEY_FILE
        if path.exists():
            raise HubKeyStoreError(f"keys: {path}: an evidence key already exists")
        if root_key.public_key() != self.root_public():
            raise HubKeyStoreError("keys: that is not this hub's root key")
        now = int(time.time()) if now is None else now
        key = X25519PrivateKey.generate()
        write_private_key(path, key)
        cert = issue_certificate(
            root_key,
            EVIDENCE_SUBJECT,
            ROLE_EVIDENCE,
            key.public_key(),
            now,
            now + valid_days * DAY,
            now,
        )
        write_atomic(self._hub_cert_path(EVIDENCE_SUBJECT), cert, 0o644)
        return open_certificate(cert, self.root_public())

    def watchlist_signing_key(self) -> Ed25519PrivateKey:
        return load_private_key(self.dir / WATCHLIST_KEY_FILE, Ed25519PrivateKey)  # type: ignore[type-abstract]

    def hub_certificate(self, subject: str) -> KeyCertificate:
        """The certificate of ``hub-alert`` or ``hub-watchlist``."""
        return open_certificate(self._hub_cert_path(subject).read_bytes(), self.root_public())

    def export_device_trust(self, out_dir: Path) -> list[Path]:
        """Copy the public files a device is provisioned with into ``out_dir``."""
        written = []
        for rel in (ROOT_PUBLIC_FILE, REVOCATIONS_FILE):
            dest = out_dir / rel
            write_atomic(dest, (self.dir / rel).read_bytes(), 0o644)
            written.append(dest)
        (out_dir / CERTIFICATES_DIR).mkdir(parents=True, exist_ok=True)
        for p in sorted((self.dir / CERTIFICATES_DIR).glob(f"*{CERTIFICATE_SUFFIX}")):
            dest = out_dir / CERTIFICATES_DIR / p.name
            shutil.copyfile(p, dest)
            written.append(dest)
        return written

    # -- sequences ------------------------------------------------------------------
    @contextlib.contextmanager
    def _sequence_lock(self) -> Iterator[None]:
        fd = os.open(self.dir / f".{SEQUENCES_FILE}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def last_sequence(self, device_id: str) -> int:
        path = self.dir / SEQUENCES_FILE
        try:
            table = json.loads(path.read_bytes()) if path.exists() else {}
            value = table.get(device_id, 0)
        except (ValueError, AttributeError) as exc:
            raise HubKeyStoreError(f"keys: {path}: corrupt") from exc
        if not isinstance(value, int):
            raise HubKeyStoreError(f"keys: {path}: corrupt")
        return value

    def next_sequence(self, device_id: str) -> int:
        """Allocate the next sequence for ``device_id``; persisted before it is returned."""
        with self._sequence_lock():
            path = self.dir / SEQUENCES_FILE
            try:
                table = json.loads(path.read_bytes()) if path.exists() else {}
            except ValueError as exc:
                raise HubKeyStoreError(f"keys: {path}: corrupt") from exc
            if not isinstance(table, dict):
                raise HubKeyStoreError(f"keys: {path}: corrupt")
            seq = int(table.get(device_id, 0)) + 1
            table[device_id] = seq
            write_atomic(path, canonical_json(table), 0o600)
            return seq
