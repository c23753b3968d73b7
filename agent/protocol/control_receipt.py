"""The control receipt: a camera's signed word that it applied (or refused) a document.

The broker's PUBACK to the hub only says the broker took a stop; whether the camera got
it, and what it did, only the camera can say. After every document on its activation or
watchlist topic (an activation, renewal, stop, revocation list or watchlist bundle), the
camera publishes on ``lfr/v1/<dev>/receipt`` (QoS 1, not retained) a signed document
(docs/protocol.md, section 2) of type ``RECEIPT_TYPE``, signed by its device key, whose
body is canonical JSON with exactly these fields:

| field             | meaning                                                            |
|-------------------|--------------------------------------------------------------------|
| ``v``             | 1                                                                  |
| ``device_id``     | the camera                                                         |
| ``document_sha256`` | hex SHA-256 of the exact payload it received (what the sender hashes) |
| ``kind``          | activation, renewal, stop, revocations, watchlist, hotlist, or unknown |
| ``sequence``      | the document's sequence number, or null (watchlists, revocation lists, unreadable) |
| ``deployment_id`` | the deployment it names, or null                                  |
| ``outcome``       | ``applied`` or ``refused``                                         |
| ``step``          | null when applied; else the check or stage that refused it         |
| ``detail``        | one printable line, at most 200 characters: what happened           |
| ``camera``        | ``open``, ``armed`` or ``closed``: the capture gate after applying  |
| ``received_at``   | camera wall clock, Unix seconds                                     |

Values the camera read from an unverified document are echoed only when they match
their patterns (null otherwise). The hub checks every field here at receipt
(``agent/hub/intake/control_receipts.py``).
"""

from __future__ import annotations

import re

from agent.protocol.fields import DEVICE_ID_RE, HEX64_RE, NAME_RE, printable_text
from agent.protocol.schema import (
    Rule,
    integer,
    matches,
    nullable,
    number,
    object_problem,
    one_of,
    text,
)

RECEIPT_TYPE = "application/vnd.lfr.control-receipt+json; v=1"
KINDS = ("activation", "renewal", "stop", "revocations", "watchlist", "hotlist", "unknown")
OUTCOMES = ("applied", "refused")
CAMERA_STATES = ("open", "armed", "closed")
STEP_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
MAX_DETAIL = 200

RECEIPT_RULES: dict[str, Rule] = {
    "v": integer(1, 1),
    "device_id": matches(DEVICE_ID_RE),
    "document_sha256": matches(HEX64_RE),
    "kind": one_of(KINDS),
    "sequence": nullable(integer(1, 2**53 - 1)),
    "deployment_id": nullable(matches(NAME_RE)),
    "outcome": one_of(OUTCOMES),
    "step": nullable(matches(STEP_RE)),
    "detail": text(lambda v: printable_text(v, MAX_DETAIL, empty=True)),
    "camera": one_of(CAMERA_STATES),
    "received_at": number(0),
}


def receipt_problem(body: dict[str, object]) -> str | None:
    """The first field that is missing, unknown or not of its form; None if well formed."""
    problem = object_problem(body, RECEIPT_RULES)
    if problem is None and (body["outcome"] == "applied") != (body["step"] is None):
        return "field 'step' must be null exactly when the outcome is applied"
    return problem
