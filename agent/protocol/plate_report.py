"""The plates deployment report as it travels: its own signed-document type and exact
fields. Like the faces report it holds aggregate figures only: frames, text lines,
vehicles, plates read and hits, never a plate. The camera builds and signs it
(``agent/runtime/plate_report.py``); the hub checks it against these rules at receipt
and keeps it apart from face reports (``agent/hub/intake/report_receiver.py``).
"""

from __future__ import annotations

import re

from agent.protocol.fields import (
    DEVICE_ID_RE,
    END_REASONS,
    HEX64_RE,
    MODEL_ID_RE,
    NAME_RE,
    VERSION_RE,
    printable_text,
)
from agent.protocol.schema import Rule, integer, matches, nullable, number, object_problem, one_of
from agent.protocol.schema import text as text_rule

PLATE_REPORT_TYPE = "application/vnd.lfr.plate-deployment-report+json; v=1"

_MAX_SEQUENCE = 2**53 - 1
_B64_RE = re.compile(r"^[A-Za-z0-9+/]{4,2048}={0,2}$")

PLATE_REPORT_RULES: dict[str, Rule] = {
    "v": integer(1, 1),
    "analytic": one_of(("plates",)),
    "device_id": matches(DEVICE_ID_RE),
    "deployment_id": matches(NAME_RE),
    "activation_sequence": integer(1, _MAX_SEQUENCE),
    "signer": matches(NAME_RE),
    "officer": text_rule(printable_text),
    "not_before": integer(),
    "not_after": integer(),
    "opened_at": nullable(number(0)),
    "closed_at": number(0),
    "end_reason": one_of(END_REASONS),
    "hotlist_sha256": matches(HEX64_RE),
    "hotlist_size": integer(),
    "threshold": number(0, 1),
    "detector_model": matches(MODEL_ID_RE),
    "recogniser_model": matches(MODEL_ID_RE),
    "frames": integer(),
    "frames_read": integer(),
    "frames_dropped": integer(),
    "text_lines": integer(),
    "plate_candidates": integer(),
    "reads": integer(),
    "vehicles": integer(),
    "plates_read": integer(),
    "hits": integer(),
    "alerts": integer(),
    "software_version": matches(VERSION_RE),
    "audit_seq": integer(),
    "audit_sha256": matches(re.compile(rf"^(?:{HEX64_RE.pattern[1:-1]})?$")),
    "ack_box": matches(_B64_RE),
}
OPTIONAL_FIELDS = frozenset({"ack_box"})


def plate_report_field_problem(body: dict[str, object]) -> str | None:
    return object_problem(body, PLATE_REPORT_RULES, OPTIONAL_FIELDS)
