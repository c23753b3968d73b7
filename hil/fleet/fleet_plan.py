"""What the fleet simulator hands each camera process: one JSON file naming its cameras
(id, broker endpoint, certificate, signing key, state folder), the alert rate and the
sending window, and where to write what happened."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class CameraSpec:
    device_id: str
    #: The broker endpoint this camera uses (a cuttable relay for some cameras).
    host: str
    port: int
    cert_file: str
    key_file: str
    #: The camera's Ed25519 signing key (PEM, 0600), enrolled at the hub.
    signing_key_file: str
    state_dir: str


@dataclass(frozen=True)
class GroupPlan:
    """One camera process."""

    name: str
    cameras: list[CameraSpec]
    ca_file: str
    hub_alert_public_key_file: str
    #: Alerts each camera seals, spread evenly (with jitter) over the sending window.
    alerts_per_camera: int
    #: Wall-clock Unix seconds: first and last moment an alert may be sealed.
    send_from: float
    send_until: float
    #: Seconds between status messages (the camera default).
    status_interval_s: float
    #: Seconds after which an unacknowledged alert is sent again (the camera default).
    resend_after_s: float
    #: Every sealed alert, one JSON line: {"a": alert id, "d": device, "s": seq, "t": time}.
    events_file: str
    #: Counters, rewritten every second: submitted, pending, published, acked, connected.
    stats_file: str
    #: Seconds over which the cameras connect at start (not all in the same instant).
    ramp_s: float = 5.0

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> GroupPlan:
        raw = json.loads(path.read_text(encoding="utf-8"))
        cameras = [CameraSpec(**c) for c in raw.pop("cameras")]
        return cls(cameras=cameras, **raw)
