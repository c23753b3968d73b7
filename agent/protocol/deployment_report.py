"""The deployment report as it travels: its signed-document type and its exact fields.
The camera builds and signs it (``agent/runtime/deployment_report.py``); the hub checks it
against this schema at receipt (``agent/hub/intake/report_receiver.py``) before it is
stored, so every value an operator later reads has passed a pattern.
"""

from __future__ import annotations

import re

from agent.protocol.fields import (
    DEVICE_ID_RE,
    END_REASONS,
    HEX64_RE,
    MODEL_ID_RE,
    NAME_RE,
    SCORE_KINDS,
    THRESHOLD_RANGES,
    VERSION_RE,
    printable_text,
)
from agent.protocol.schema import (
    Rule,
    boolean,
    exact_object,
    integer,
    list_of,
    matches,
    nullable,
    number,
    object_problem,
    one_of,
    text,
)

REPORT_TYPE = "application/vnd.lfr.deployment-report+json; v=1"

#: The report's own sequence space is the activation's: 1 … 2^53−1.
_MAX_SEQUENCE = 2**53 - 1
#: Why CCTV recording stopped before its deployment ended ("" when it did not).
RECORDING_STOP_REASONS = ("", "disk-full", "write-failed", "encoder-failed", "internal-error")
_B64_RE = re.compile(r"^[A-Za-z0-9+/]{4,2048}={0,2}$")
_RATE = number(0, 1)


def _interval(v: object) -> str | None:
    """A 95 % interval of a rate: exactly [low, high] with low <= high."""
    problem = list_of(_RATE, 2)(v)
    if problem is not None:
        return problem
    assert isinstance(v, list)
    if len(v) != 2 or v[0] > v[1]:
        return "must be [low, high]"
    return None


#: Every field of a report and its rule. ``ack_box`` (the sealed acknowledgement secret,
#: docs/protocol.md section 14) and the recording figures (section 18.4) are absent from
#: reports written before they existed.
REPORT_RULES: dict[str, Rule] = {
    "v": integer(1, 1),
    "device_id": matches(DEVICE_ID_RE),
    "deployment_id": matches(NAME_RE),
    "activation_sequence": integer(1, _MAX_SEQUENCE),
    "signer": matches(NAME_RE),
    "officer": text(printable_text),
    "not_before": integer(),
    "not_after": integer(),
    "opened_at": nullable(number(0)),
    "closed_at": number(0),
    "end_reason": one_of(END_REASONS),
    "watchlist_sha256": matches(HEX64_RE),
    "watchlist_size": integer(),
    "threshold": number(0, max(hi for _, hi in THRESHOLD_RANGES.values())),
    "threshold_kind": one_of(SCORE_KINDS),
    "target_fpir": nullable(number(1e-12, 1)),
    "calibration": nullable(
        exact_object(
            {
                "cohort_size": integer(1),
                "false_alerts": integer(),
                "fpir": _RATE,
                "fpir_ci95": _interval,
            }
        )
    ),
    "detector_model": matches(MODEL_ID_RE),
    "embedder_model": matches(MODEL_ID_RE),
    "frames": integer(),
    "frames_dropped": integer(),
    "faces_detected": integer(),
    "faces_passed_quality": integer(),
    "faces_compared": integer(),
    "embeddings": integer(),
    "tracks": integer(),
    "alerts": integer(),
    "software_version": matches(VERSION_RE),
    "audit_seq": integer(),
    "audit_sha256": matches(re.compile(rf"^(?:{HEX64_RE.pattern[1:-1]})?$")),
    "ack_box": matches(_B64_RE),
    "recording": boolean(),
    "recording_segments": integer(),
    "recording_bytes": integer(),
    "recording_stopped": one_of(RECORDING_STOP_REASONS),
}
#: The threshold's kind and calibration (docs/protocol.md, section 14) are absent from reports
#: written before score kinds existed: their threshold is a cosine; the recording fields from
#: reports written before CCTV recording existed.
OPTIONAL_FIELDS = frozenset(
    {
        "ack_box",
        "threshold_kind",
        "target_fpir",
        "calibration",
        "recording",
        "recording_segments",
        "recording_bytes",
        "recording_stopped",
    }
)


def report_field_problem(body: dict[str, object]) -> str | None:
    """The first field that is missing, unknown or not of its form, as a phrase; None
    when the report is exactly well formed."""
    problem = object_problem(body, REPORT_RULES, OPTIONAL_FIELDS)
    if problem is not None:
        return problem
    kind = str(body.get("threshold_kind", "cosine"))
    lo, hi = THRESHOLD_RANGES[kind]
    threshold = body["threshold"]
    assert isinstance(threshold, int | float)
    if not lo <= threshold <= hi:
        return f"field 'threshold' must be in {lo:g}–{hi:g} for a {kind} threshold"
    return None
