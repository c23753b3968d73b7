"""Withdrawing a camera for good (stolen, lost, decommissioned): ``lfr-hub device withdraw``.

In order, each step independent of whether the camera is reachable:

1. its broker certificates (the one issued at enrolment, and any ``pki issue --device``
   made for its id) are put on the CA's revocation list (``crl.pem``): once the broker has
   re-read it (``systemctl reload mosquitto``), the certificate is refused at the TLS
   handshake;
2. its rights at the broker are removed (``broker_admin.remove``): the broker disconnects
   it at once if it is connected, and refuses it everything from then on;
3. its registered signing key stops being accepted at the hub: alerts, reports and
   receipts signed with it are refused;
4. the registry marks it withdrawn (``devices/<id>/withdrawn.json``): no watchlist is
   built for it and no activation issued to it;
5. the withdrawal is recorded (who, when, why, which certificates) for the hub's audit.

A stolen camera keeps its keys; what it can still do after this is in docs/security.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from agent.errors import LfrError
from agent.hub.devices.device_enrolment import DEVICE_CERT_FILE, WITHDRAWN_FILE, device_dir
from agent.hub.keys.pki import client_certificates, load_certificate, revoke_certificate
from agent.protocol.fields import printable_text
from agent.protocol.topics import TopicError, check_device_id
from agent.trust.key_files import write_atomic


class WithdrawalError(LfrError):
    exit_code = 2


@dataclass(frozen=True)
class Withdrawal:
    device_id: str
    withdrawn_at: int
    by: str
    reason: str
    revoked_serials: tuple[int, ...]
    broker_access_removed: bool | None  # None: the broker was not reached
    key_unregistered: bool

    def record(self) -> dict[str, object]:
        return {
            "device_id": self.device_id,
            "withdrawn_at": self.withdrawn_at,
            "by": self.by,
            "reason": self.reason,
            "revoked_serials": [f"{s:x}" for s in self.revoked_serials],
        }


def withdrawn_record(hub_dir: Path, device_id: str) -> dict[str, object] | None:
    """The withdrawal record of a device, or None if it was never withdrawn."""
    path = device_dir(hub_dir, device_id) / WITHDRAWN_FILE
    try:
        record = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # Unreadable: treat it as withdrawn, never as a usable camera.
        return {"device_id": device_id}
    return record if isinstance(record, dict) else {"device_id": device_id}


def require_not_withdrawn(hub_dir: Path, device_id: str) -> None:
    if withdrawn_record(hub_dir, device_id) is not None:
        raise WithdrawalError(f"{device_id}: withdrawn; it gets no watchlist or activation")


def withdraw_device(
    hub_dir: Path,
    pki_dir: Path,
    device_id: str,
    *,
    by: str,
    reason: str,
    remove_broker_access: Callable[[str], bool] | None,
    unregister_key: Callable[[Withdrawal], bool],
    now: float | None = None,
) -> Withdrawal:
    """Withdraw ``device_id``. ``unregister_key`` records the withdrawal in the hub
    database (from then on its key is refused); ``remove_broker_access`` (None: the
    broker is not reached now) removes its broker rights."""
    try:
        check_device_id(device_id)
    except TopicError as exc:
        raise WithdrawalError(f"device withdraw: {exc}") from exc
    if not printable_text(by, 200) or not printable_text(reason, 200, empty=True):
        raise WithdrawalError("device withdraw: --by and --reason must be printable text")
    folder = device_dir(hub_dir, device_id)
    if not folder.is_dir():
        raise WithdrawalError(f"device withdraw: {device_id} is not enrolled in {hub_dir}")
    certs = []
    if (folder / DEVICE_CERT_FILE).is_file():
        certs.append(load_certificate(folder / DEVICE_CERT_FILE))
    certs += client_certificates(pki_dir, device_id)
    revoked = tuple(sorted({c.serial_number for c in certs if revoke_certificate(pki_dir, c)}))
    withdrawal = Withdrawal(
        device_id=device_id,
        withdrawn_at=int(time.time() if now is None else now),
        by=by,
        reason=reason,
        revoked_serials=revoked,
        broker_access_removed=None,
        key_unregistered=False,
    )
    withdrawal = replace(withdrawal, key_unregistered=unregister_key(withdrawal))
    # Recorded before the broker is asked: a camera half withdrawn is withdrawn.
    write_atomic(
        folder / WITHDRAWN_FILE, json.dumps(withdrawal.record(), sort_keys=True).encode(), 0o644
    )
    if remove_broker_access is not None:
        removed = remove_broker_access(device_id)
        withdrawal = replace(withdrawal, broker_access_removed=removed)
    return withdrawal
