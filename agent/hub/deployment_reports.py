"""Deployment reports at the hub: verify each device-signed summary and keep it once.

Reports arrive on ``lfr/v1/<dev>/event``. They carry aggregate figures only, so they
can be published; they are kept in the hub database beside the alerts, one row per
(device, deployment, activation sequence), whatever the number of redeliveries.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.errors import LfrError
from agent.runtime.deployment_report import REPORT_TYPE
from agent.transport.topics import TopicError, parse_topic
from agent.trust.signed_document import DocumentError, open_document

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deployment_reports (
    device_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    activation_sequence INTEGER NOT NULL,
    received_at REAL NOT NULL,
    body TEXT NOT NULL,
    envelope BLOB NOT NULL,
    PRIMARY KEY (device_id, deployment_id, activation_sequence)
)
"""
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "device_id": str,
    "deployment_id": str,
    "activation_sequence": int,
    "end_reason": str,
    "frames": int,
    "faces_detected": int,
    "faces_compared": int,
    "alerts": int,
    "threshold": (int, float),
    "watchlist_sha256": str,
    "watchlist_size": int,
}


class ReportError(LfrError):
    """A deployment report is malformed, unsigned, or not from the device it names."""

    exit_code = 1


@dataclass(frozen=True)
class StoredReport:
    device_id: str
    deployment_id: str
    activation_sequence: int
    received_at: float
    body: dict[str, Any]


class DeploymentReportStore:
    """The ``deployment_reports`` table of the hub database."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ReportError(f"reports: {path}: cannot open ({exc})") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def add(self, body: dict[str, Any], envelope: bytes, received_at: float) -> bool:
        """Store a verified report; False when this one was already held."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO deployment_reports VALUES (?, ?, ?, ?, ?, ?)",
                (
                    body["device_id"],
                    body["deployment_id"],
                    body["activation_sequence"],
                    received_at,
                    json.dumps(body, sort_keys=True),
                    envelope,
                ),
            )
            return cur.rowcount == 1

    def latest(self, device_id: str | None = None, limit: int = 50) -> list[StoredReport]:
        query = "SELECT device_id, deployment_id, activation_sequence, received_at, body FROM deployment_reports"
        params: tuple[Any, ...] = ()
        if device_id:
            query += " WHERE device_id = ?"
            params = (device_id,)
        query += " ORDER BY received_at DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*params, limit)).fetchall()
        return [StoredReport(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def for_deployment(self, deployment_id: str) -> list[StoredReport]:
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, deployment_id, activation_sequence, received_at, body "
                "FROM deployment_reports WHERE deployment_id = ? ORDER BY activation_sequence",
                (deployment_id,),
            ).fetchall()
        return [StoredReport(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]


def open_report(
    topic: str, payload: bytes, device_key: Callable[[str], Ed25519PublicKey | None]
) -> dict[str, Any]:
    """Verify a report received on ``topic``; return its body or raise ReportError."""
    try:
        device_id, kind = parse_topic(topic)
    except TopicError as exc:
        raise ReportError(f"report: {exc}") from exc
    if kind != "event":
        raise ReportError(f"report: topic kind {kind!r} does not carry reports")
    key = device_key(device_id)
    if key is None:
        raise ReportError(f"report: device {device_id!r} is not enrolled")
    try:
        doc = open_document(payload, REPORT_TYPE, lambda _kid: key)
    except DocumentError as exc:
        raise ReportError(f"report: {exc}") from exc
    body = doc.body
    for name, kind_ in _REQUIRED.items():
        value = body.get(name)
        if not isinstance(value, kind_) or isinstance(value, bool):
            raise ReportError(f"report: field {name!r} missing or of the wrong type")
        # SQLite stores 64-bit integers; a larger one would fail the insert, not the check.
        if isinstance(value, int) and not 0 <= value < 2**63:
            raise ReportError(f"report: field {name!r} is out of range")
    if body["device_id"] != device_id:
        raise ReportError(f"report: names device {body['device_id']!r} but came from {device_id!r}")
    return body


class ReportReceiver:
    """Subscribed to ``lfr/v1/+/event`` by ``lfr-hub alerts watch``."""

    def __init__(
        self,
        store: DeploymentReportStore,
        device_key: Callable[[str], Ed25519PublicKey | None],
        on_report: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.device_key = device_key
        self.on_report = on_report
        self.clock = clock
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0

    def handle(self, topic: str, payload: bytes) -> None:
        """The MQTT message handler form of ``receive``."""
        self.receive(topic, payload)

    def receive(self, topic: str, payload: bytes) -> str:
        try:
            body = open_report(topic, payload, self.device_key)
        except ReportError as exc:
            self.rejected += 1
            log.warning("%s", exc)
            return "rejected"
        if not self.store.add(body, payload, self.clock()):
            self.duplicates += 1
            return "duplicate"
        self.stored += 1
        if self.on_report is not None:
            self.on_report(body)
        return "stored"


def summary_line(body: dict[str, Any]) -> str:
    """One line an operator reads: what a deployment did."""
    return (
        f"report {body['device_id']} {body['deployment_id']} (activation {body['activation_sequence']}):"
        f" ended {body['end_reason']}; {body['frames']} frames, {body['faces_detected']} faces detected,"
        f" {body['faces_compared']} compared, {body['alerts']} alerts; threshold {body['threshold']},"
        f" watchlist {body['watchlist_size']} entries ({body['watchlist_sha256'][:12]}…)"
    )
