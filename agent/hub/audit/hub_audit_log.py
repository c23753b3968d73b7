"""The hub audit log: ``agent/trust/audit_log.py`` (hash chain, signed checkpoints, a
file lock shared by every process on this machine) with the hub audit key.

Events the console writes: ``console.login`` (username), ``console.login_refused``
(username, reason), ``console.logout`` (username), ``alert.adjudicated`` (alert_id,
device, outcome, username), ``user.added`` / ``user.password_set`` / ``user.disabled``
/ ``user.enabled`` (username, role, by), ``alert.held`` / ``alert.hold_released``
(alert_id, device, case_ref, username), ``results.exported`` (first, last, format,
rows, username). The service: ``service.started`` / ``service.stopped``,
``retention.purged`` (counts). The hub commands, through
``agent/cli/hub_commands/hub_audit_args.py``: ``control.*_signed``, ``watchlist.built``,
``hotlist.built``, ``alert.adjudicated``, ``retention.purged``, ``device.approved``,
``device.withdrawn``, ``evidence.requested``, ``evidence.exported``. Other rooms append
their own through ``HubAudit.record``. Notes typed by operators stay in the database, not here.
"""

from __future__ import annotations

import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.errors import LfrError
from agent.trust.audit_log import AuditLog, AuditReport, FieldValue, verify_audit_log
from agent.trust.key_files import load_private_key, write_private_key


class HubAudit:
    """One process's writer of the hub audit log; thread-safe."""

    def __init__(self, path: Path, signing_key: Ed25519PrivateKey, checkpoint_every: int) -> None:
        self._log = AuditLog.open(path, signing_key, checkpoint_every)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, key_file: Path, checkpoint_every: int) -> HubAudit:
        key = load_private_key(key_file, Ed25519PrivateKey)  # type: ignore[type-abstract]
        return cls(path, key, checkpoint_every)

    def record(self, event: str, **fields: FieldValue) -> None:
        with self._lock:
            self._log.append(event, **fields)

    def close(self) -> None:
        with self._lock:
            self._log.close()


def make_audit_key(out: Path) -> Ed25519PublicKey:
    """Write a new hub audit signing key (0600); refuses to replace an existing one."""
    if out.exists():
        raise LfrError(f"{out}: exists; a hub audit key is never replaced in place")
    key = Ed25519PrivateKey.generate()
    write_private_key(out, key)
    return key.public_key()


def verify_hub_audit(path: Path, public_key: Ed25519PublicKey) -> AuditReport:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LfrError(f"audit: {path}: cannot read ({exc.strerror})") from exc
    return verify_audit_log(data, public_key)
