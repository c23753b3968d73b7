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
from agent.hub.keys.operator_keys import HubKeyStore
from agent.trust.activation_token import (
    ANALYTIC_FACES,
    ANALYTIC_PLATES,
    ANALYTICS,
    DEVICE_ID_PATTERN,
    MAX_TEXT,
    TYPE_BY_KIND,
    Calibration,
    cohort_problem,
    target_problem,
    threshold_problem,
)
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
        self,
        store: HubKeyStore,
        operator: str,
        passphrase: str,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """Unseals the operator's key with ``passphrase`` (HubKeyStoreError if wrong);
        the key then lives only as long as this issuer."""
        self.store = store
        self.operator = operator
        self._key, self._cert = store.operator(operator, passphrase)
        self._wall = wall

    @property
    def role(self) -> str:
        """The role the operator's certificate gives: what this issuer may sign."""
        return self._cert.role

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
        *,
        score: str = "cosine",
        target_fpir: float | None = None,
        calibration: Calibration | None = None,
        recording: bool = False,
        analytic: str = ANALYTIC_FACES,
    ) -> bytes:
        """A signed activation. ``score`` is the kind ``threshold`` is in; a cosine one is
        written without the field, as before score kinds existed. ``target_fpir`` and
        ``calibration`` (from ``agent.hub.calibration``) record where the threshold came from.
        ``watchlist_sha256`` names the deployment's list: a watchlist for faces, a hotlist
        for ``analytic="plates"`` (then written as ``hotlist_sha256``; its threshold is the
        lowest voted read confidence that hits, and it carries no face-score fields)."""
        if not 0 < duration_s <= HUB_MAX_DURATION_S:
            raise UsageError(f"--duration: must be at most {HUB_MAX_DURATION_S // 3600}h")
        if not 0 < lease_s <= duration_s:
            raise UsageError("--lease: must be positive and not longer than --duration")
        if analytic not in ANALYTICS:
            raise UsageError(f"--analytic: must be one of {', '.join(ANALYTICS)}")
        list_name = "hotlist" if analytic == ANALYTIC_PLATES else "watchlist"
        if not re.fullmatch(r"[0-9a-f]{64}", watchlist_sha256):
            raise UsageError(f"--{list_name}: must be the 64 hex digit SHA-256 of the {list_name}")
        if analytic == ANALYTIC_PLATES:
            if score != "cosine" or target_fpir is not None or calibration is not None:
                raise UsageError(
                    "activation: a plates threshold is a read confidence; --score and "
                    "--target-fpir are for faces"
                )
            if recording:
                raise UsageError("--record: a plates deployment does not record")
            if not 0.0 <= threshold <= 1.0:
                raise UsageError(f"--threshold: must be 0–1, got {threshold}")
        elif (problem := threshold_problem(threshold, score)) is not None:
            raise UsageError(f"--{problem}")
        officer = officer.strip()
        if not officer or len(officer) > MAX_TEXT or not officer.isprintable():
            raise UsageError(f"--officer: must be 1–{MAX_TEXT} printable characters")
        fields: dict[str, Any] = {"threshold": threshold}
        if score != "cosine":
            fields["score"] = score
        if (target_fpir is None) != (calibration is None):
            raise UsageError("activation: a target FPIR needs its calibration, and only then")
        if target_fpir is not None and calibration is not None:
            if (problem := target_problem(target_fpir)) is not None:
                raise UsageError(f"--{problem.replace('_', '-', 1)}")
            if (problem := cohort_problem(calibration.cohort_size, target_fpir)) is not None:
                raise UsageError(problem)
            fields["target_fpir"] = target_fpir
            fields["calibration"] = calibration.body()
        start = int(self._wall()) if not_before is None else not_before
        if recording:
            # Only when on: a camera that predates recording then refuses the activation
            # rather than running the deployment without the recording it asked for.
            fields["recording"] = True
        return self._sign(
            "activation",
            device_id,
            deployment_id,
            {
                "not_before": start,
                "not_after": start + duration_s,
                "lease_s": lease_s,
                f"{list_name}_sha256": watchlist_sha256,
                "officer": officer,
                # Written only for plates: a camera that predates plates then refuses it.
                **({"analytic": analytic} if analytic == ANALYTIC_PLATES else {}),
                **fields,
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
