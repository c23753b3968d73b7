"""Field patterns of the wire protocol, defined once for both sides.

Every identifier a message carries (device, deployment, operator name, alert id, hash,
watchlist entry reference) has exactly one pattern here. The camera checks what it
receives against them, the hub checks what cameras send against them at receipt, and
anything shown to an operator has passed one of them first or is escaped.
"""

from __future__ import annotations

import re

#: A camera's id: its MQTT topic segment and its broker certificate's Common Name.
DEVICE_ID_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
DEVICE_ID_RE = re.compile(rf"^{DEVICE_ID_PATTERN}$")

#: Deployment ids, operator names and hub key subjects.
NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,62}"
NAME_RE = re.compile(rf"^{NAME_PATTERN}$")

#: A SHA-256 digest in lower-case hex (watchlist hashes, key ids, envelope hashes).
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")

#: A 128-bit random alert id in lower-case hex.
ALERT_ID_RE = re.compile(r"^[0-9a-f]{32}$")

#: A watchlist entry reference (opaque to the camera; the hub map names the subject).
MAX_REF_LEN = 64
REF_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_REF_LEN - 1}}}$")

#: Longest free text (officer reference, stop reason) a control document may carry.
MAX_TEXT = 200

#: A deployment id (as activations name it): the same pattern as names.
DEPLOYMENT_ID_RE = NAME_RE

#: A pinned model id (``<name>@<sha256 prefix>``, or an operator model's file name).
MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:@-]{0,127}$")

#: The name of a quality figure in an alert (``inter_eye_px``, ``sharpness`` …).
QUALITY_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

#: A number plate as a camera shows it: 1–4 letters or digits, a space, 1–4 more
#: (``AB12 CDE``); the UK format rules themselves are ``agent/plates/uk_plate_format.py``.
PLATE_TEXT_RE = re.compile(r"^(?=.{2,8}$)[A-Z0-9]{1,4}(?: [A-Z0-9]{1,4})?$")

#: Software version strings (PEP 440 and local versions).
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}$")

#: Device wall-clock time in a status message: ISO 8601, seconds, with an offset.
ISO_TIME_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})$"
)

#: The kinds of score a threshold can be in (docs/protocol.md, section 6), and the range of
#: each: a cosine similarity, or an S-norm score (standard deviations of the non-mated).
SCORE_KINDS = ("cosine", "snorm")
THRESHOLD_RANGES = {"cosine": (0.0, 1.0), "snorm": (0.0, 100.0)}

#: Why a deployment ended (docs/protocol.md, section 14).
END_REASONS = frozenset(
    {
        "stopped",
        "expired",
        "lease-lapsed",
        "watchlist-missing",
        "source-died",
        "source-ended",
        "source-failed",
        "internal-error",
        "superseded",
        "reactivated",
        "signer-revoked",
        "outbox-full",
        "outbox-error",
        "shutdown",
        "open-failed",
        "closed",
    }
)


def printable_text(value: object, max_len: int = MAX_TEXT, *, empty: bool = False) -> bool:
    """Free text (an officer reference, a stop reason): printable characters only, so no
    control, format (bidi) or line-separator character can reach an operator's screen."""
    return (
        isinstance(value, str)
        and (empty or bool(value))
        and len(value) <= max_len
        and value.isprintable()
    )
