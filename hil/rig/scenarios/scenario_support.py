"""What every scenario shares: results and checks, the audit log as events, waiting, and the
``RigDriver`` protocol a rig (virtual or real) offers the scenarios."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from agent.errors import LfrError
from agent.hub.intake.alert_receiver import Receipt
from agent.hub.store.alert_store import AlertRow
from hil.rig.network_faults import NetworkFaults
from hil.rig.rig_description import RigDescription
from hil.synthetic_scene import SceneTruth

PASS, FAIL, NOT_RUN = "pass", "fail", "not run"
# Magic bytes of a JPEG (JFIF) or PNG file, or of an MP4 (its ftyp box with the brands the
# encoders write): found in plaintext, a frame, a crop or video reached disk.
IMAGE_MAGIC = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF",
    b"\x89PNG\r\n\x1a\n",
    b"ftypisom",
    b"ftypmp42",
)


class NotAvailable(LfrError):
    """This rig cannot perform the step (the check is reported as not run, with the reason)."""


class RigTimeout(LfrError):
    """Something the scenario waited for did not happen in time (the check fails)."""


@dataclass
class Check:
    name: str
    verdict: str
    detail: str = ""


@dataclass
class ScenarioResult:
    name: str
    title: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, float | int | str] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def verdict(self) -> str:
        verdicts = {c.verdict for c in self.checks}
        if FAIL in verdicts:
            return FAIL
        if PASS in verdicts:
            return PASS
        return NOT_RUN

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, PASS if ok else FAIL, detail))
        return ok

    def not_run(self, name: str, reason: str) -> None:
        self.checks.append(Check(name, NOT_RUN, reason))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "verdict": self.verdict,
            "checks": [c.__dict__ for c in self.checks],
            "figures": self.figures,
            "samples": self.samples,
            "notes": self.notes,
            "duration_s": round(self.duration_s, 1),
        }


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    t: float  # Unix seconds (the device's wall clock)
    event: str
    fields: dict[str, Any]


def parse_audit(text: str) -> list[AuditEvent]:
    """Audit lines as events; a torn last line (power cut) is skipped, not an error."""
    out = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            t = datetime.fromisoformat(entry["time"]).timestamp()
            out.append(AuditEvent(int(entry["seq"]), t, str(entry["event"]), entry["fields"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def wait_for(what: str, condition: Callable[[], bool], timeout: float, poll: float = 0.1) -> float:
    """Poll until ``condition()``; return the time it turned true. ``RigTimeout`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.time()
        if time.monotonic() > deadline:
            raise RigTimeout(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a measured sample)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass(frozen=True)
class ActivationSent:
    deployment_id: str
    watchlist_hash: str
    sent_at: float
    not_before: int
    not_after: int
    lease_s: int


class RigDriver(Protocol):
    """What a scenario may ask of a rig. Steps a rig cannot do raise ``NotAvailable``."""

    desc: RigDescription
    device_id: str
    truth: SceneTruth
    ref_identity: dict[str, str]  # watchlist entry ref -> identity
    network: NetworkFaults
    work_dir: Path

    def setup(self) -> None: ...
    def teardown(self) -> None: ...

    # deployments (hub side, over MQTT)
    def new_deployment(self, label: str) -> str: ...
    def load_watchlist(self, deployment_id: str) -> str: ...
    def activate(
        self, deployment_id: str, watchlist_hash: str, duration_s: int, lease_s: int
    ) -> ActivationSent: ...
    def renew(self, deployment_id: str, lease_s: int) -> float: ...
    def stop_deployment(self, deployment_id: str, reason: str) -> float: ...

    # what the hub holds
    def stored_alerts(self) -> list[AlertRow]: ...
    def receipts(self) -> list[tuple[float, Receipt]]: ...
    def reports(self) -> list[dict[str, Any]]: ...

    # the device
    def audit(self) -> list[AuditEvent]: ...
    def audit_verified(self) -> str: ...
    def outbox_entries(self) -> list[str]: ...
    def watchlist_files(self) -> list[str]: ...
    def device_log_text(self) -> str: ...
    def start_device(self) -> None: ...
    def stop_device(self) -> int: ...
    def kill_device(self) -> None: ...
    def tear_outbox(self) -> list[str]: ...
    def feed_lost(self) -> None: ...
    def feed_back(self) -> None: ...
    def restart_broker(self) -> None: ...
    def set_wall_clock_offset(self, seconds: float) -> float:
        """Set the device's wall clock to the true time plus ``seconds`` (0 puts it right);
        returns the rig's time just before the change. Audit times read afterwards are the
        device's shifted clock."""
        ...

    def writable_changes(self) -> tuple[list[str], list[str] | None]: ...
    def plaintext_images(self) -> tuple[int, list[str]]: ...
    def unexpected_egress(self) -> tuple[int, list[str]]: ...
    def scene_origin(self, gate_opened: float) -> float: ...


def events_for(
    rig: RigDriver, deployment_id: str, event: str, after: float = 0.0, after_seq: int = 0
) -> list[AuditEvent]:
    """Audit events of a deployment; ``after`` filters by time, ``after_seq`` by position
    (the only safe filter once the device's wall clock has been jumped)."""
    return [
        e
        for e in rig.audit()
        if e.event == event
        and e.fields.get("deployment_id") == deployment_id
        and e.t >= after
        and e.seq > after_seq
    ]


def wait_event(
    rig: RigDriver,
    deployment_id: str,
    event: str,
    timeout: float,
    after: float = 0.0,
    after_seq: int = 0,
) -> AuditEvent:
    found: list[AuditEvent] = []

    def seen() -> bool:
        found[:] = events_for(rig, deployment_id, event, after, after_seq)
        return bool(found)

    wait_for(f"{event} of {deployment_id} in the audit log", seen, timeout)
    return found[0]


def last_seq(rig: RigDriver) -> int:
    """The audit log's last entry number (0 when empty): a marker for ``after_seq``."""
    return max((e.seq for e in rig.audit()), default=0)


def sealed_ids(rig: RigDriver) -> set[str]:
    return {str(e.fields["alert_id"]) for e in rig.audit() if e.event == "alert.sealed"}
