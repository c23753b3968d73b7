"""The three operator-signed control documents: activation, renewal and stop.

Each is a signed document (``agent.trust.signed_document``) whose body is
canonical JSON. Times are integer seconds since the Unix epoch, UTC. Every body
carries its signer's root-signed certificate and the hub's current root-signed
revocation list (both as base64 of their envelope bytes) so a device needs only
the root public key to verify it. See docs/protocol.md for the field tables.

An activation's threshold is a score of one kind (``score``: ``cosine``, or
``snorm`` for S-norm against the watchlist); an activation without the field was
issued before score kinds existed and is cosine. When the hub derived the
threshold from a target false-alert rate, ``target_fpir`` and ``calibration``
(the non-mated cohort's size, its false alerts at the threshold and the 95 %
confidence interval of that rate) say so; they travel to the audit log and the
deployment report. A cohort of n faces supports a target t only when n·t ≥
``MIN_FALSE_ALERTS_PER_TARGET``: fewer expected false alerts say nothing about the rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from agent.errors import CheckFailed
from agent.protocol.fields import DEVICE_ID_PATTERN as DEVICE_ID_PATTERN
from agent.protocol.fields import MAX_TEXT as MAX_TEXT
from agent.protocol.fields import SCORE_KINDS, THRESHOLD_RANGES
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
#: Fields a body may leave out (their absence means the meaning they had before them). An
#: issuer writes ``recording`` only when it is true, and ``analytic`` only for plates, so a
#: device that predates either refuses such an activation instead of silently not recording
#: or running faces on it; a plates activation names its list as ``hotlist_sha256`` instead
#: of ``watchlist_sha256``.
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "activation": (
        "score",
        "target_fpir",
        "calibration",
        "recording",
        "analytic",
        "hotlist_sha256",
    ),
    "renewal": (),
    "stop": (),
}
CALIBRATION_FIELDS = ("cohort_size", "false_alerts", "fpir", "fpir_ci95")
MIN_FALSE_ALERTS_PER_TARGET = 3
#: The analytics an activation may task: one per activation, never both.
ANALYTIC_FACES = "faces"
ANALYTIC_PLATES = "plates"
ANALYTICS = (ANALYTIC_FACES, ANALYTIC_PLATES)
#: Face-score fields a plates activation never carries (its threshold is a read confidence).
FACE_SCORE_FIELDS = ("score", "target_fpir", "calibration")
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
class Calibration:
    """How a threshold was derived from a target FPIR: the cohort and the rate it achieved."""

    cohort_size: int  # non-mated faces scored against the watchlist
    false_alerts: int  # of them at or above the threshold
    fpir: float  # false_alerts / cohort_size
    fpir_ci95: tuple[float, float]  # Wilson 95 % interval of that rate

    def body(self) -> dict[str, Any]:
        return {
            "cohort_size": self.cohort_size,
            "false_alerts": self.false_alerts,
            "fpir": self.fpir,
            "fpir_ci95": [self.fpir_ci95[0], self.fpir_ci95[1]],
        }


@dataclass(frozen=True)
class Activation(ControlDocument):
    not_before: int
    not_after: int
    lease_s: int
    watchlist_sha256: str
    threshold: float
    officer: str
    score: str = "cosine"
    target_fpir: float | None = None
    calibration: Calibration | None = None
    #: CCTV recording for this deployment (sealed segments, docs/privacy.md); off unless
    #: the signed activation says so.
    recording: bool = False
    #: Which analytic this deployment runs (faces or plates), with its own list: the
    #: watchlist for faces, the hotlist for plates (then ``watchlist_sha256`` is "").
    #: For plates, ``threshold`` is the lowest voted read confidence that may hit.
    analytic: str = ANALYTIC_FACES
    hotlist_sha256: str = ""

    @property
    def list_sha256(self) -> str:
        """The hash of the list this activation binds: watchlist or hotlist."""
        return self.hotlist_sha256 if self.analytic == ANALYTIC_PLATES else self.watchlist_sha256

    @property
    def list_kind(self) -> str:
        return "hotlist" if self.analytic == ANALYTIC_PLATES else "watchlist"


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


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TokenFieldError(f"{name}: must be a finite number")
    return float(value)


def threshold_problem(threshold: float, score: str) -> str | None:
    """Why ``threshold`` cannot be a threshold of score kind ``score``, or None."""
    if score not in SCORE_KINDS:
        return f"score: must be one of {', '.join(SCORE_KINDS)}, got {str(score)[:20]!r}"
    lo, hi = threshold_range(score)
    if not (math.isfinite(threshold) and lo <= threshold <= hi):
        return (
            f"threshold: must be a number in {lo:g}–{hi:g} for a {score} score, got {threshold:g}"
        )
    return None


def threshold_range(score: str) -> tuple[float, float]:
    return THRESHOLD_RANGES[score]


def target_problem(target: float) -> str | None:
    """Why ``target`` cannot be a target false-alert rate (FPIR), or None."""
    if not math.isfinite(target) or not 0.0 < target <= 1.0:
        return f"target_fpir: must be a rate above 0 and at most 1, got {target}"
    return None


def cohort_problem(
    cohort_size: int, target: float, min_false_alerts: int = MIN_FALSE_ALERTS_PER_TARGET
) -> str | None:
    """Why a cohort of ``cohort_size`` faces cannot support ``target``, or None."""
    needed = math.ceil(min_false_alerts / target - 1e-9)
    if cohort_size < needed:
        return (
            f"target_fpir {target:.3g} needs a cohort of at least {needed} non-mated faces "
            f"({min_false_alerts}/target), the calibration used {cohort_size}"
        )
    return None


def _calibration(value: Any) -> Calibration:
    if not isinstance(value, dict):
        raise TokenFieldError("calibration: must be an object")
    missing = sorted(set(CALIBRATION_FIELDS) - set(value))
    if missing:
        raise TokenFieldError(f"calibration: field {missing[0]!r} missing")
    unknown = sorted(set(value) - set(CALIBRATION_FIELDS))
    if unknown:
        raise TokenFieldError(f"calibration: unknown field {str(unknown[0])[:40]!r}")
    size = _count(value, "cohort_size", 1)
    false_alerts = _count(value, "false_alerts")
    if false_alerts > size:
        raise TokenFieldError("calibration: false_alerts exceeds cohort_size")
    fpir = _number(value["fpir"], "calibration.fpir")
    if abs(fpir - false_alerts / size) > 1e-9:
        raise TokenFieldError("calibration: fpir is not false_alerts / cohort_size")
    ci = value["fpir_ci95"]
    if not isinstance(ci, list) or len(ci) != 2:
        raise TokenFieldError("calibration: fpir_ci95 must be [low, high]")
    lo, hi = (_number(v, "calibration.fpir_ci95") for v in ci)
    if not 0.0 <= lo <= fpir <= hi <= 1.0:
        raise TokenFieldError("calibration: fpir_ci95 must satisfy 0 ≤ low ≤ fpir ≤ high ≤ 1")
    return Calibration(size, false_alerts, fpir, (lo, hi))


def parse_body(kind: str, body: dict[str, Any]) -> Activation | Renewal | Stop:
    """Check a verified body's fields exactly (none missing, none unknown) and type them."""
    required = set(COMMON_FIELDS) | set(KIND_FIELDS[kind])
    analytic = body.get("analytic", ANALYTIC_FACES) if kind == "activation" else ANALYTIC_FACES
    if analytic not in ANALYTICS:
        raise TokenFieldError(f"analytic: must be one of {', '.join(ANALYTICS)}")
    if analytic == ANALYTIC_PLATES:
        required = (required - {"watchlist_sha256"}) | {"hotlist_sha256"}
    missing = sorted(required - set(body))
    if missing:
        raise TokenFieldError(f"{kind}: field {missing[0]!r} missing")
    unknown = sorted(set(body) - required - set(OPTIONAL_FIELDS[kind]))
    if unknown:
        raise TokenFieldError(f"{kind}: unknown field {unknown[0]!r}")
    if analytic == ANALYTIC_FACES and "hotlist_sha256" in body:
        raise TokenFieldError("hotlist_sha256: only a plates activation names a hotlist")
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
    score = body.get("score", "cosine")
    if not isinstance(score, str):
        raise TokenFieldError("score: must be a string")
    threshold = body["threshold"]
    if analytic == ANALYTIC_PLATES:
        face_fields = [f for f in FACE_SCORE_FIELDS if f in body]
        if face_fields:
            raise TokenFieldError(
                f"{face_fields[0]}: a plates activation's threshold is a read confidence, "
                "not a face score"
            )
        if "recording" in body:
            # The plates lane keeps no CCTV recording: refused rather than silently not kept.
            raise TokenFieldError("recording: a plates deployment does not record")
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not math.isfinite(threshold)
            or not 0.0 <= threshold <= 1.0
        ):
            raise TokenFieldError("threshold: must be a number in 0–1")
    else:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            if score not in SCORE_KINDS:
                threshold = math.nan  # the score kind is what is wrong
            else:
                lo, hi = threshold_range(score)
                raise TokenFieldError(f"threshold: must be a number in {lo:g}–{hi:g}")
        if (problem := threshold_problem(float(threshold), score)) is not None:
            raise TokenFieldError(problem)
    target: float | None = None
    calibration: Calibration | None = None
    if ("target_fpir" in body) != ("calibration" in body):
        raise TokenFieldError("target_fpir and calibration: one is given without the other")
    if "target_fpir" in body:
        target = _number(body["target_fpir"], "target_fpir")
        if (problem := target_problem(target)) is not None:
            raise TokenFieldError(problem)
        calibration = _calibration(body["calibration"])
        if (problem := cohort_problem(calibration.cohort_size, target)) is not None:
            raise TokenFieldError(problem)
        if calibration.fpir > target:
            raise TokenFieldError(
                f"calibration: fpir {calibration.fpir:.3g} exceeds target_fpir {target:.3g}"
            )
    list_field = "hotlist_sha256" if analytic == ANALYTIC_PLATES else "watchlist_sha256"
    digest = body[list_field]
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise TokenFieldError(f"{list_field}: must be 64 lower-case hex digits")
    officer = _text(body, "officer")
    if not officer.strip():
        raise TokenFieldError("officer: must not be empty")
    recording = body.get("recording", False)
    if not isinstance(recording, bool):
        raise TokenFieldError("recording: must be true or false")
    act = Activation(
        **common,
        not_before=_count(body, "not_before"),
        not_after=_count(body, "not_after"),
        lease_s=_count(body, "lease_s", 1),
        watchlist_sha256=digest if analytic == ANALYTIC_FACES else "",
        threshold=float(threshold),
        officer=officer,
        score=score,
        target_fpir=target,
        calibration=calibration,
        recording=recording,
        analytic=analytic,
        hotlist_sha256=digest if analytic == ANALYTIC_PLATES else "",
    )
    if act.not_after <= act.not_before:
        raise TokenFieldError("not_after: must be later than not_before")
    return act
