"""Hub side: writing signed activations, renewals and stops for one device.

The issuer checks what it can before signing (names, hash, threshold range,
duration cap, the operator's role), takes the next sequence number from the
hub key store, and embeds the operator's certificate and the current
revocation list so the device needs nothing but the root public key.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from typing import Any

from agent.errors import UsageError
from agent.hub.operator_keys import HubKeyStore
from agent.trust.activation_token import DEVICE_ID_PATTERN, MAX_TEXT, TYPE_BY_KIND
from agent.trust.activation_verifier import ROLE_PERMISSIONS
from agent.trust.key_certificates import NAME_PATTERN
from agent.trust.signed_document import sign_document

HUB_MAX_DURATION_S = 24 * 3600  # devices apply their own, usually lower, cap (12 h default)
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str, what: str) -> int:
    """'4h', '10m', '90s', '1h30m' → seconds (> 0)."""
    m = _DURATION.fullmatch(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise UsageError(f"{what}: {text!r} is not a duration like 4h, 10m, 90s or 1h30m")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    seconds = h * 3600 + mi * 60 + s
    if seconds <= 0:
        raise UsageError(f"{what}: must be longer than zero")
    return seconds


class ActivationIssuer:
    """Signs control documents as one operator of a hub key store."""

    def __init__(
        self, store: HubKeyStore, operator: str, wall: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.operator = operator
        self._key, self._cert = store.operator(operator)
        self._wall = wall

    def _sign(self, kind: str, device_id: str, deployment_id: str, fields: dict[str, Any]) -> bytes:
        if self._cert.role not in ROLE_PERMISSIONS[kind]:
            raise UsageError(
                f"operator {self.operator!r} has role {self._cert.role}; a {kind} needs"
                f" {' or '.join(sorted(ROLE_PERMISSIONS[kind]))}"
            )
        if not re.fullmatch(DEVICE_ID_PATTERN, device_id):
            raise UsageError(f"--device {device_id!r}: not a device id")
        if not re.fullmatch(NAME_PATTERN, deployment_id):
            raise UsageError(
                f"--deployment {deployment_id!r}: use lower-case letters, digits, '.', '_', '-'"
            )
        now = int(self._wall())
        if self.store.revocations().revoked_key_ids & {self._cert.key_id}:
            raise UsageError(f"operator {self.operator!r}: key is revoked")
        if not self._cert.valid_at(now):
            raise UsageError(f"operator {self.operator!r}: certificate is not valid now")
        body = {
            "device_id": device_id,
            "deployment_id": deployment_id,
            "issued_at": now,
            "signer_certificate": base64.b64encode(self._cert.document).decode("ascii"),
            "revocations": base64.b64encode(self.store.revocations().document).decode("ascii"),
            **fields,
        }
        body["sequence"] = self.store.next_sequence(device_id)
        return sign_document(TYPE_BY_KIND[kind], body, self._key)

    def activation(
        self,
        device_id: str,
        deployment_id: str,
        duration_s: int,
        lease_s: int,
        watchlist_sha256: str,
        threshold: float,
        officer: str,
        not_before: int | None = None,
    ) -> bytes:
        if not 0 < duration_s <= HUB_MAX_DURATION_S:
            raise UsageError(f"--duration: must be at most {HUB_MAX_DURATION_S // 3600}h")
        if not 0 < lease_s <= duration_s:
            raise UsageError("--lease: must be positive and not longer than --duration")
        if not re.fullmatch(r"[0-9a-f]{64}", watchlist_sha256):
            raise UsageError("--watchlist: must be the 64 hex digit SHA-256 of the watchlist")
        if not 0.0 <= threshold <= 1.0:
            raise UsageError(f"--threshold: must be 0–1, got {threshold}")
        officer = officer.strip()
        if not officer or len(officer) > MAX_TEXT or not officer.isprintable():
            raise UsageError(f"--officer: must be 1–{MAX_TEXT} printable characters")
        start = int(self._wall()) if not_before is None else not_before
        return self._sign(
            "activation",
            device_id,
            deployment_id,
            {
                "not_before": start,
                "not_after": start + duration_s,
                "lease_s": lease_s,
                "watchlist_sha256": watchlist_sha256,
                "threshold": threshold,
                "officer": officer,
            },
        )

    def renewal(self, device_id: str, deployment_id: str, lease_s: int) -> bytes:
        if lease_s <= 0 or lease_s > HUB_MAX_DURATION_S:
            raise UsageError("--lease: must be positive and at most 24h")
        return self._sign("renewal", device_id, deployment_id, {"lease_s": lease_s})

    def stop(self, device_id: str, deployment_id: str, reason: str) -> bytes:
        if len(reason) > MAX_TEXT or not reason.isprintable():
            raise UsageError(f"--reason: must be at most {MAX_TEXT} printable characters")
        return self._sign("stop", device_id, deployment_id, {"reason": reason})
