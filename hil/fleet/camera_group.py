"""One process of light simulated cameras for the fleet simulator.

    python -m hil.fleet.camera_group PLAN.json

Each camera is the camera's real delivery path without the vision part: an ``MqttLink``
with its own broker certificate (mutual TLS, persistent session, retained status with
last will), an ``AlertOutbox`` on disk (fsync before publishing) and an
``AlertPublisher`` (resend until the hub's acknowledgement with the sealed secret). One
scheduler thread seals alerts for every camera at the planned rate (signed with the
camera's own enrolled key, sealed to the hub alert key) and publishes each camera's
status at the camera's real interval.

Every sealed alert is one line of the events file; the stats file is rewritten every
second. SIGTERM stops the cameras and writes the stats a last time.
"""

from __future__ import annotations

import functools
import heapq
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent import __version__
from agent.protocol.topics import status_topic
from agent.runtime.health_status import HealthStatus
from agent.transport.alert_outbox import AlertOutbox
from agent.transport.alert_publisher import AlertPublisher
from agent.transport.mqtt_link import MqttLink, MqttSettings
from agent.trust.alert_envelope import AlertContent
from agent.trust.key_files import load_private_key, load_public_key
from hil.fleet.fleet_plan import CameraSpec, GroupPlan

log = logging.getLogger("hil.fleet.camera_group")
DEPLOYMENT = "fleet-sim"
#: A face crop's size in a real alert (a 112×112 JPEG is a few kilobytes).
CROP_BYTES = 6000
_JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"


@dataclass
class LightCamera:
    spec: CameraSpec
    link: MqttLink
    publisher: AlertPublisher
    outbox: AlertOutbox
    started_at: float = field(default_factory=time.time)
    submitted: int = 0


def _camera(spec: CameraSpec, plan: GroupPlan, hub_key: X25519PublicKey) -> LightCamera:
    settings = MqttSettings(
        host=spec.host,
        port=spec.port,
        ca_file=Path(plan.ca_file),
        cert_file=Path(spec.cert_file),
        key_file=Path(spec.key_file),
        client_id=spec.device_id,
    )
    link = MqttLink(settings, status_topic=status_topic(spec.device_id))
    outbox = AlertOutbox(
        Path(spec.state_dir) / "outbox",
        max_bytes=512 * 1024 * 1024,
        alarm_fraction=0.9,
        retention_s=31 * 86400,
        audit=lambda _event, _fields: None,
    )
    signing_key = load_private_key(Path(spec.signing_key_file), Ed25519PrivateKey)  # type: ignore[type-abstract]
    publisher = AlertPublisher(
        outbox,
        link,
        device_id=spec.device_id,
        device_key=signing_key,
        hub_key=hub_key,
        resend_after_s=plan.resend_after_s,
    )
    return LightCamera(spec, link, publisher, outbox)


def _content(device_id: str, n: int, rng: random.Random) -> AlertContent:
    now = time.time()
    crop = _JPEG_HEAD + rng.randbytes(CROP_BYTES) + b"\xff\xd9"
    return AlertContent(
        device_id=device_id,
        deployment_id=DEPLOYMENT,
        watchlist_entry=f"W-{n % 50:04d}",
        score=round(0.6 + rng.random() * 0.3, 4),
        threshold=0.6,
        model_id="sface-2021dec-fp32:fleet",
        track_id=n,
        first_seen=now - 1.0,
        decided_at=now,
        probe_jpeg=crop,
        quality={"inter_eye_px": 40.0, "sharpness": 120.0, "yaw": 0.1, "detector_score": 0.9},
    )


def _status(cam: LightCamera) -> bytes:
    return HealthStatus(
        device_id=cam.spec.device_id,
        state="armed",
        version=__version__,
        time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        uptime_s=round(time.time() - cam.started_at, 1),
        models={},
        fps=25.0,
        dropped_frames=0,
        outbox_depth=len(cam.outbox),
        disk_free_bytes=None,
        disk_free_fraction=None,
        cpu_temp_c=None,
        clock_sync="synchronised",
    ).to_json()


def _publish_status(cam: LightCamera) -> None:
    cam.link.publish_status(_status(cam))


class CameraGroup:
    def __init__(self, plan: GroupPlan) -> None:
        self.plan = plan
        hub_key = load_public_key(Path(plan.hub_alert_public_key_file), X25519PublicKey)  # type: ignore[type-abstract]
        self.cameras = [_camera(spec, plan, hub_key) for spec in plan.cameras]
        self.stop = threading.Event()
        self._events: IO[str] = open(plan.events_file, "a", encoding="utf-8")  # noqa: SIM115
        self._rng = random.Random(plan.name)

    def start(self) -> None:
        gap = self.plan.ramp_s / max(1, len(self.cameras))
        for cam in self.cameras:
            # A fresh retained status at every (re)connect, as the camera's health thread does.
            cam.link.add_connect_listener(functools.partial(_publish_status, cam))
            cam.link.start()
            cam.publisher.start()
            if self.stop.wait(gap):
                return

    def run(self) -> None:
        """Seal alerts and publish statuses on schedule, until SIGTERM."""
        plan = self.plan
        window = max(1.0, plan.send_until - plan.send_from)
        every = window / max(1, plan.alerts_per_camera)
        due: list[tuple[float, int, str]] = []
        for i in range(len(self.cameras)):
            if plan.alerts_per_camera:
                heapq.heappush(due, (plan.send_from + self._rng.random() * every, i, "alert"))
            first_status = time.time() + self._rng.random() * plan.status_interval_s
            heapq.heappush(due, (first_status, i, "status"))
        last_stats = 0.0
        while not self.stop.is_set():
            now = time.time()
            if now - last_stats >= 1.0:
                self.write_stats()
                last_stats = now
            if not due or due[0][0] > now:
                self.stop.wait(min(0.2, max(0.0, (due[0][0] - now) if due else 0.2)))
                continue
            at, i, what = heapq.heappop(due)
            cam = self.cameras[i]
            if what == "status":
                if cam.link.connected:
                    _publish_status(cam)
                heapq.heappush(due, (at + plan.status_interval_s, i, "status"))
                continue
            self._submit(cam)
            if cam.submitted < plan.alerts_per_camera:
                jitter = (self._rng.random() - 0.5) * every * 0.5
                heapq.heappush(due, (max(now, at + every + jitter), i, "alert"))

    def _submit(self, cam: LightCamera) -> None:
        sealed = cam.publisher.submit(_content(cam.spec.device_id, cam.submitted, self._rng))
        cam.submitted += 1
        line = {"a": sealed.header.alert_id, "d": cam.spec.device_id, "s": sealed.header.seq}
        self._events.write(json.dumps({**line, "t": round(time.time(), 4)}) + "\n")
        self._events.flush()

    def write_stats(self) -> None:
        stats = {
            "pid": os.getpid(),
            "cameras": len(self.cameras),
            "submitted": sum(c.submitted for c in self.cameras),
            "pending": sum(len(c.outbox) for c in self.cameras),
            "published": sum(c.publisher.published for c in self.cameras),
            "acknowledged": sum(c.publisher.acknowledged for c in self.cameras),
            "connected": sum(1 for c in self.cameras if c.link.connected),
            "at": time.time(),
        }
        path = Path(self.plan.stats_file)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats), encoding="utf-8")
        tmp.replace(path)

    def shutdown(self) -> None:
        for cam in self.cameras:
            cam.publisher.stop()
        for cam in self.cameras:
            cam.link.stop(graceful=False)
        self.write_stats()
        self._events.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m hil.fleet.camera_group PLAN.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    group = CameraGroup(GroupPlan.read(Path(args[0])))
    signal.signal(signal.SIGTERM, lambda _s, _f: group.stop.set())
    try:
        group.start()
        group.run()
    finally:
        group.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
