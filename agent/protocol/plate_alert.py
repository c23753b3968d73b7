"""The plate alert as it travels: its signed-document type, its sealing label and the
exact fields of its sealed metadata. The camera seals it
(``agent/trust/plate_alert_envelope.py``); the hub checks it against these rules after
decrypting (``agent/hub/intake/alert_receiver.py``) before anything is stored, so every
value an operator reads has passed a pattern. A plate alert is its own kind: it shares
the face alert's header, outbox and acknowledgement, never its fields or tables.
"""

from __future__ import annotations

import re

from agent.protocol.fields import (
    DEPLOYMENT_ID_RE,
    DEVICE_ID_RE,
    MODEL_ID_RE,
    PLATE_TEXT_RE,
    REF_RE,
)
from agent.protocol.schema import Rule, integer, matches, number, object_problem, one_of

PLATE_ALERT_PAYLOAD_TYPE = "application/vnd.lfr.plate-alert+json; v=1"
PLATE_ALERT_INFO = b"lfr/v1 plate-alert"

PLATE_FORMATS = ("current", "prefix", "suffix", "dateless")
PLATE_COLOURS = ("yellow", "white", "other")
_ACK_SECRET_RE = re.compile(r"^[0-9a-f]{32}$")

#: Every field of a plate alert's sealed metadata and its rule.
PLATE_ALERT_RULES: dict[str, Rule] = {
    "device_id": matches(DEVICE_ID_RE),
    "deployment_id": matches(DEPLOYMENT_ID_RE),
    "hotlist_entry": matches(REF_RE),
    "plate": matches(PLATE_TEXT_RE),
    "plate_format": one_of(PLATE_FORMATS),
    "colour": one_of(PLATE_COLOURS),
    "confidence": number(0, 1),
    "threshold": number(0, 1),
    "model_id": matches(MODEL_ID_RE),
    "track_id": integer(),
    "reads": integer(1, 10_000),
    "agreeing": integer(1, 10_000),
    "first_seen": number(0),
    "decided_at": number(0),
    "ack_secret": matches(_ACK_SECRET_RE),
}


def plate_alert_problem(meta: dict[str, object]) -> str | None:
    """The first field of the metadata that is missing, unknown or not of its form."""
    problem = object_problem(meta, PLATE_ALERT_RULES)
    if problem is None and meta["agreeing"] > meta["reads"]:  # type: ignore[operator]
        return "field 'agreeing' exceeds 'reads'"
    return problem
