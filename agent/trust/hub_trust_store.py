"""Device side: which hub key may sign or receive what, decided from the provisioned root.

Files under ``paths.keys_dir`` (provisioned from the hub, all public):

    hub-root-pub.pem                 the hub root public key (the only trust anchor)
    hub-certificates/*.cert.json     root-signed certificates (alert key, watchlist key, ...)
    hub-revocations.json             the newest root-signed revocation list seen (optional)

Operator certificates need not be provisioned: each activation, renewal and
stop carries its signer's certificate, verified against the root like any
other. A revocation list travels the same way; the device adopts a list only
if it verifies and its version is higher than the one it holds, and persists it
so a restart never forgets a revocation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.trust.key_certificates import (
    ROLE_ALERT,
    ROLE_EVIDENCE,
    ROLE_WATCHLIST,
    CertificateError,
    KeyCertificate,
    RevocationList,
    open_certificate,
    open_revocation_list,
)
from agent.trust.key_files import KeyFileError, load_public_key, write_atomic

log = logging.getLogger(__name__)

ROOT_PUBLIC_FILE = "hub-root-pub.pem"
CERTIFICATES_DIR = "hub-certificates"
CERTIFICATE_SUFFIX = ".cert.json"
REVOCATIONS_FILE = "hub-revocations.json"


class HubTrustStore:
    """The provisioned root public key, verified certificates and the current revocation list."""

    def __init__(
        self,
        root: Ed25519PublicKey,
        certificates: list[KeyCertificate] | None = None,
        revocations: RevocationList | None = None,
        revocations_path: Path | None = None,
    ) -> None:
        self.root = root
        self._certs: dict[str, KeyCertificate] = {c.key_id: c for c in certificates or []}
        self._revocations = revocations
        self._revocations_path = revocations_path
        self._file_seen = self._file_stamp()

    @classmethod
    def load(cls, keys_dir: Path) -> HubTrustStore:
        """Load the trust files from ``keys_dir``; any file that does not verify is an error."""
        root = load_public_key(keys_dir / ROOT_PUBLIC_FILE, Ed25519PublicKey)  # type: ignore[type-abstract]
        certs = []
        cert_dir = keys_dir / CERTIFICATES_DIR
        if cert_dir.is_dir():
            for path in sorted(cert_dir.glob(f"*{CERTIFICATE_SUFFIX}")):
                try:
                    certs.append(open_certificate(path.read_bytes(), root))
                except CertificateError as exc:
                    raise CertificateError(f"{path}: {exc}") from exc
                except OSError as exc:
                    raise KeyFileError(f"{path}: cannot read ({exc.strerror})") from exc
        rev_path = keys_dir / REVOCATIONS_FILE
        revocations = None
        if rev_path.exists():
            try:
                revocations = open_revocation_list(rev_path.read_bytes(), root)
            except CertificateError as exc:
                raise CertificateError(f"{rev_path}: {exc}") from exc
            except OSError as exc:
                raise KeyFileError(f"{rev_path}: cannot read ({exc.strerror})") from exc
        return cls(root, certs, revocations, rev_path)

    # -- certificates ---------------------------------------------------------------
    def open_certificate(self, data: bytes) -> KeyCertificate:
        return open_certificate(data, self.root)

    def certificate(self, kid: str) -> KeyCertificate | None:
        return self._certs.get(kid)

    @property
    def certificates(self) -> list[KeyCertificate]:
        return list(self._certs.values())

    def _current(self, role: str, now: float) -> list[KeyCertificate]:
        return sorted(
            (
                c
                for c in self._certs.values()
                if c.role == role and c.valid_at(now) and not self.is_revoked(c.key_id)
            ),
            key=lambda c: c.issued_at,
            reverse=True,
        )

    def alert_key(self, now: float) -> X25519PublicKey:
        """The hub key alerts are sealed to: the newest valid, unrevoked alert certificate."""
        return self._encryption_key(ROLE_ALERT, now)

    def evidence_key(self, now: float) -> X25519PublicKey:
        """The hub key recording segments are sealed to (a separate key from the alert
        key, so whoever opens alerts cannot open CCTV recordings and the other way round)."""
        return self._encryption_key(ROLE_EVIDENCE, now)

    def has_evidence_key(self, now: float) -> bool:
        return bool(self._current(ROLE_EVIDENCE, now))

    def _encryption_key(self, role: str, now: float) -> X25519PublicKey:
        certs = self._current(role, now)
        if not certs:
            raise CertificateError(f"trust store: no valid hub {role} key certificate")
        key = certs[0].public_key
        assert isinstance(key, X25519PublicKey)  # guaranteed by open_certificate
        return key

    def watchlist_key_finder(self, now: float) -> Callable[[str], Ed25519PublicKey | None]:
        """A ``find_key`` for ``open_document``: valid, unrevoked watchlist-signing keys only."""
        keys = {c.key_id: c.signing_key() for c in self._current(ROLE_WATCHLIST, now)}
        return keys.get

    # -- revocation -----------------------------------------------------------------
    @property
    def revocation_version(self) -> int:
        return self._revocations.version if self._revocations else 0

    def is_revoked(self, kid: str) -> bool:
        return self._revocations is not None and kid in self._revocations.revoked_key_ids

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self._revocations_path.stat() if self._revocations_path else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size) if st else None

    def refresh_revocations(self) -> None:
        """Adopt a newer list a technician installed in the keys folder while the agent
        runs (``keys export`` output). A file that does not verify is ignored, loudly:
        the list already held stays in force."""
        stamp = self._file_stamp()
        if stamp is None or stamp == self._file_seen or self._revocations_path is None:
            return
        self._file_seen = stamp
        try:
            self.offer_revocations(self._revocations_path.read_bytes(), persist=False)
        except (CertificateError, OSError) as exc:
            log.error("trust store: %s ignored: %s", self._revocations_path, exc)

    def offer_revocations(self, data: bytes, persist: bool = True) -> bool:
        """Verify a revocation list and adopt it if newer. Returns True when adopted.

        An older or equal version is ignored (never a downgrade); a list that
        does not verify raises CertificateError.
        """
        rl = open_revocation_list(data, self.root)
        if rl.version <= self.revocation_version:
            return False
        self._revocations = rl
        if persist and self._revocations_path is not None:
            write_atomic(self._revocations_path, rl.document, 0o644)
            self._file_seen = self._file_stamp()
        return True
