"""The hub's acknowledgement of deployment reports, on ``lfr/v1/<dev>/report-ack``::

    {"reports": [{"activation_sequence": N, "deployment_id": "…", "secret": "<32 hex>"}, …],
     "v": 1}

canonical JSON, at most 100 entries and 16 KiB. ``secret`` is the one the hub opened from
the report's ``ack_box`` (``agent/trust/report_ack_secret.py``). Parsed strictly: any other
key, version or form rejects the whole payload.
"""

from __future__ import annotations

import re

from agent.protocol.fields import NAME_RE
from agent.protocol.schema import exact_object, integer, list_of, matches, object_problem
from agent.trust.signed_document import UntrustedJsonError, canonical_json, loads_untrusted

VERSION = 1
MAX_ENTRIES = 100
MAX_BYTES = 16 * 1024
_SECRET_RE = re.compile(r"^[0-9a-f]{32}$")
_ENTRY = exact_object(
    {
        "deployment_id": matches(NAME_RE),
        "activation_sequence": integer(1, 2**53 - 1),
        "secret": matches(_SECRET_RE),
    }
)
_RULES = {"reports": list_of(_ENTRY, MAX_ENTRIES), "v": integer(VERSION, VERSION)}


class ReportAckFormatError(ValueError):
    """A report acknowledgement that is not of the protocol's form."""


def encode_report_ack(entries: list[tuple[str, int, bytes]]) -> bytes:
    """(deployment id, activation sequence, secret) for each report acknowledged."""
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"a report ack holds at most {MAX_ENTRIES} reports")
    return canonical_json(
        {
            "reports": [
                {"activation_sequence": seq, "deployment_id": dep, "secret": secret.hex()}
                for dep, seq, secret in entries
            ],
            "v": VERSION,
        }
    )


def decode_report_ack(payload: bytes) -> list[tuple[str, int, bytes]]:
    if len(payload) > MAX_BYTES:
        raise ReportAckFormatError(f"report ack: larger than {MAX_BYTES} bytes")
    try:
        obj = loads_untrusted(payload)
    except UntrustedJsonError as exc:
        raise ReportAckFormatError(f"report ack: {exc}") from exc
    if not isinstance(obj, dict):
        raise ReportAckFormatError("report ack: not a JSON object")
    problem = object_problem(obj, _RULES)
    if problem is not None:
        raise ReportAckFormatError(f"report ack: {problem}")
    return [
        (e["deployment_id"], e["activation_sequence"], bytes.fromhex(e["secret"]))
        for e in obj["reports"]
    ]
