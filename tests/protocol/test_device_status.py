"""The status message: what the camera publishes passes the schema the hub shows it by,
and anything else (a stolen camera's control characters, unknown fields) is refused."""

from __future__ import annotations

import json

import pytest

from agent.protocol.device_status import StatusError, parse_status
from agent.runtime.health_status import HealthStatus, ModelStatus

DEV = "lfr-st-01"


def _status(**changes: object) -> HealthStatus:
    base = HealthStatus(
        device_id=DEV,
        state="active",
        version="0.1.0",
        time="2026-11-22T06:46:40+00:00",
        uptime_s=5231.4,
        models={
            "detector": ModelStatus("yunet-2023mar@e305a835f90c4c77", "ab" * 32),
            "embedder": ModelStatus("sface-2021dec@247a8f88ef05ea21", "cd" * 32),
        },
        fps=7.4,
        dropped_frames=12,
        outbox_depth=0,
        disk_free_bytes=20871168000,
        disk_free_fraction=0.7,
        cpu_temp_c=None,
        clock_sync="synchronised",
        alarms=("disk_low",),
    )
    return HealthStatus(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_what_the_camera_publishes_parses() -> None:
    parsed = parse_status(DEV, _status().to_json())
    assert parsed.online and parsed.state == "active"
    assert parse_status(DEV, b"offline").state == "offline"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_status(state="active\x1b]0;owned\x07").to_json(), "'state' is not one of"),
        (_status(version="0.1\r").to_json(), "'version' is not valid"),
        (_status(alarms=("disk_low\x1b[2J",)).to_json(), "'alarms' item"),
        (_status(device_id="lfr-st-02").to_json(), "another device"),
        (
            _status(models={"detector": ModelStatus("m\x07", "ab" * 32)}).to_json(),
            "'models' detector",
        ),
        (json.dumps({**_status().to_dict(), "note": "x"}).encode(), "unknown field 'note'"),
        (b"[1]", "not a JSON object"),
        (b"{" * 100, "not JSON|nested"),
        (b"{" + b" " * 5000 + b"}", "larger than"),
    ],
)
def test_anything_else_is_refused_with_the_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(StatusError, match=reason):
        parse_status(DEV, payload)
