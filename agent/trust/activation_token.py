"""The three operator-signed control documents: activation, renewal and stop.

Each is a signed document (``agent.trust.signed_document``) whose body is
canonical JSON. Times are integer seconds since the Unix epoch, UTC. Every body
carries its signer's root-signed certificate and the hub's current root-signed
revocation list (both as base64 of their envelope bytes) so a device needs only
the root public key to verify it. See docs/protocol.md for the field tables.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from agent.errors import CheckFailed
from agent.trust.key_certificates import NAME_PATTERN

ACTIVATION_TYPE = "application/vnd.lfr.activation+json; v=1"
RENEWAL_TYPE = "application/vnd.lfr.renewal+json; v=1"
STOP_TYPE = "application/vnd.lfr.stop+json; v=1"
KIND_BY_TYPE = {ACTIVATION_TYPE: "activation", RENEWAL_TYPE: "renewal", STOP_TYPE: "stop"}
TYPE_BY_KIND = {kind: t for t, kind in KIND_BY_TYPE.items()}

COMMON_FIELDS = (
    "device_id",
    "deployment_id",
    "sequence",
    "issued_at",
    "signer_certificate",
    "revocations",
)
KIND_FIELDS = {
    "activation": (
        "not_before",
        "not_after",
        "lease_s",
        "watchlist_sha256",
        "threshold",
        "officer",
    ),
    "renewal": ("lease_s",),
    "stop": ("reason",),
}
DEVICE_ID_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
MAX_TEXT = 200
_HEX64 = re.compile(r"[0-9a-f]{64}")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class TokenFieldError(CheckFailed):
    """A signed body lacks a field, has an unknown one, or a value of the wrong form."""


@dataclass(frozen=True)
class ControlDocument:
    """Fields shared by activation, renewal and stop."""

    kind: str
    device_id: str
    deployment_id: str
    sequence: int
    issued_at: int
    signer_certificate: str = field(repr=False)
    revocations: str = field(repr=False)


@dataclass(frozen=True)
class Activation(ControlDocument):
    not_before: int
    not_after: int
    lease_s: int
    watchlist_sha256: str
    threshold: float
    officer: str


@dataclass(frozen=True)
class Renewal(ControlDocument):
    lease_s: int


@dataclass(frozen=True)
class Stop(ControlDocument):
    reason: str


def _text(body: dict[str, Any], name: str, pattern: str | None = None) -> str:
    v = body[name]
    if not isinstance(v, str):
        raise TokenFieldError(f"{name}: must be a string")
    if pattern is not None and not re.fullmatch(pattern, v):
        raise TokenFieldError(f"{name}: {v[:40]!r} does not match {pattern}")
    if len(v) > MAX_TEXT and pattern is None:
        raise TokenFieldError(f"{name}: longer than {MAX_TEXT} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise TokenFieldError(f"{name}: contains control characters")
    return v


def _count(body: dict[str, Any], name: str, minimum: int = 0) -> int:
    v = body[name]
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum or v >= 2**53:
        raise TokenFieldError(f"{name}: must be an integer ≥ {minimum}")
    return v


def _b64_field(body: dict[str, Any], name: str) -> str:
    v = body[name]
    if not isinstance(v, str) or not v or not _B64.fullmatch(v):
        raise TokenFieldError(f"{name}: must be base64 of a signed document")
    return v


def parse_body(kind: str, body: dict[str, Any]) -> Activation | Renewal | Stop:
    """Check a verified body's fields exactly (none missing, none unknown) and type them."""
    expected = set(COMMON_FIELDS) | set(KIND_FIELDS[kind])
    missing = sorted(expected - set(body))
    if missing:
        raise TokenFieldError(f"{kind}: field {missing[0]!r} missing")
    unknown = sorted(set(body) - expected)
    if unknown:
        raise TokenFieldError(f"{kind}: unknown field {unknown[0]!r}")
    common: dict[str, Any] = {
        "kind": kind,
        "device_id": _text(body, "device_id", DEVICE_ID_PATTERN),
        "deployment_id": _text(body, "deployment_id", NAME_PATTERN),
        "sequence": _count(body, "sequence", 1),
        "issued_at": _count(body, "issued_at"),
        "signer_certificate": _b64_field(body, "signer_certificate"),
        "revocations": _b64_field(body, "revocations"),
    }
    if kind == "renewal":
        return Renewal(**common, lease_s=_count(body, "lease_s", 1))
    if kind == "stop":
        return Stop(**common, reason=_text(body, "reason"))
    threshold = body["threshold"]
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not math.isfinite(threshold)
        or not 0.0 <= threshold <= 1.0
    ):
        raise TokenFieldError("threshold: must be a number in 0–1")
    digest = body["watchlist_sha256"]
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise TokenFieldError("watchlist_sha256: must be 64 lower-case hex digits")
    officer = _text(body, "officer")
    if not officer.strip():
        raise TokenFieldError("officer: must not be empty")
    act = Activation(
        **common,
        not_before=_count(body, "not_before"),
        not_after=_count(body, "not_after"),
        lease_s=_count(body, "lease_s", 1),
        watchlist_sha256=digest,
        threshold=float(threshold),
        officer=officer,
    )
    if act.not_after <= act.not_before:
        raise TokenFieldError("not_after: must be later than not_before")
    return act
