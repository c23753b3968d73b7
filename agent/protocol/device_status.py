"""The device status message as it travels (docs/protocol.md, section 15): retained on
``lfr/v1/<dev>/status``, unsigned, for monitoring only. The camera builds it
(``agent/runtime/health_status.py``); whoever shows it (``lfr-hub device list --online``,
the console) parses it here first, so a status from a stolen camera cannot carry
anything but the figures the protocol defines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent.protocol.fields import DEVICE_ID_RE, HEX64_RE, ISO_TIME_RE, MODEL_ID_RE, VERSION_RE
from agent.protocol.schema import (
    Rule,
    exact_object,
    integer,
    list_of,
    matches,
    nullable,
    number,
    object_problem,
    one_of,
)
from agent.trust.signed_document import UntrustedJsonError, loads_untrusted

#: The will the broker publishes when a device's link dies (and a clean shutdown's).
OFFLINE = b"offline"
MAX_STATUS_BYTES = 4096
STATES = ("starting", "idle", "armed", "active", "stopping", "unknown")
ALARMS = ("disk_low", "cpu_hot", "outbox_nearly_full", "alerts_not_stored")
CLOCK_SYNC = ("synchronised", "unsynchronised", "unknown")
_ROLE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_MODEL = exact_object({"model_id": matches(MODEL_ID_RE), "sha256": matches(HEX64_RE)})


def _models(v: object) -> str | None:
    if not isinstance(v, dict) or len(v) > 8:
        return "must be an object of at most 8 models"
    for role, model in v.items():
        if not _ROLE_RE.fullmatch(role):
            return "has a model role that is not valid"
        problem = _MODEL(model)
        if problem is not None:
            return f"{role}: {problem}"
    return None


STATUS_RULES: dict[str, Rule] = {
    "schema": integer(1, 1),
    "device_id": matches(DEVICE_ID_RE),
    "state": one_of(STATES),
    "version": matches(VERSION_RE),
    "time": matches(ISO_TIME_RE),
    "uptime_s": number(0),
    "models": _models,
    "fps": nullable(number(0, 1000)),
    "dropped_frames": nullable(integer()),
    "outbox_depth": nullable(integer()),
    "disk_free_bytes": nullable(integer()),
    "disk_free_fraction": nullable(number(0, 1)),
    "cpu_temp_c": nullable(number(-100, 200)),
    "clock_sync": one_of(CLOCK_SYNC),
    "alarms": list_of(one_of(ALARMS), len(ALARMS)),
}


class StatusError(ValueError):
    """A status message that is not one the protocol defines (the reason, no content)."""


@dataclass(frozen=True)
class DeviceStatus:
    """A parsed status: ``online`` False for the last will, else the checked body."""

    online: bool
    body: dict[str, Any]

    @property
    def state(self) -> str:
        return str(self.body.get("state", "offline")) if self.online else "offline"


def parse_status(device_id: str, payload: bytes) -> DeviceStatus:
    """Check a status received on ``lfr/v1/<device_id>/status``; raise StatusError."""
    if payload.strip() in (b"", OFFLINE):
        return DeviceStatus(False, {})
    if len(payload) > MAX_STATUS_BYTES:
        raise StatusError(f"status: larger than {MAX_STATUS_BYTES} bytes")
    try:
        body = loads_untrusted(payload)
    except UntrustedJsonError as exc:
        raise StatusError(f"status: {exc}") from exc
    if not isinstance(body, dict):
        raise StatusError("status: not a JSON object")
    problem = object_problem(body, STATUS_RULES)
    if problem is not None:
        raise StatusError(f"status: {problem}")
    if body["device_id"] != device_id:
        raise StatusError("status: names another device than its topic")
    return DeviceStatus(True, body)
