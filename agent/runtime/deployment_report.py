"""The per-deployment results summary: built at the end of every activation, signed by the
device, kept locally and published on the event topic until the broker has it.

It holds aggregate figures only (frames, faces, alerts, threshold, watchlist size and
hash, model ids, the window and why it ended) so deployments can be published.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.trust.key_files import write_atomic
from agent.trust.signed_document import sign_document

REPORT_TYPE = "application/vnd.lfr.deployment-report+json; v=1"
REPORTS_DIR = "reports"
_SENT_SUFFIX = ".sent"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}-[0-9]{1,20}\.json$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeploymentReport:
    """Field meanings are in docs/protocol.md ("Deployment report")."""

    device_id: str
    deployment_id: str
    activation_sequence: int
    signer: str
    officer: str
    not_before: int
    not_after: int
    opened_at: float | None  # Unix seconds the camera opened (None: it never opened)
    closed_at: float
    end_reason: str
    watchlist_sha256: str
    watchlist_size: int
    threshold: float
    detector_model: str
    embedder_model: str
    frames: int
    frames_dropped: int
    faces_detected: int
    faces_passed_quality: int
    faces_compared: int
    embeddings: int
    tracks: int
    alerts: int
    software_version: str
    # The device audit log's last entry when the report was signed: the hub keeps it,
    # so a log later cut back or rewritten on the device no longer verifies against it.
    audit_seq: int = 0
    audit_sha256: str = ""

    def body(self) -> dict[str, Any]:
        data = asdict(self)
        data["v"] = 1
        return data


def sign_report(report: DeploymentReport, device_key: Ed25519PrivateKey) -> bytes:
    return sign_document(REPORT_TYPE, report.body(), device_key)


class ReportArchive:
    """Signed reports under ``<state_dir>/reports``; a ``.sent`` marker once the broker took one."""

    def __init__(self, state_dir: Path, retention_s: float) -> None:
        self.dir = state_dir / REPORTS_DIR
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.retention_s = retention_s
        self._lock = threading.Lock()

    def save(self, report: DeploymentReport, signed: bytes) -> str:
        name = f"{report.deployment_id}-{report.activation_sequence}.json"
        write_atomic(self.dir / name, signed, 0o600)
        return name

    def unsent(self) -> list[tuple[str, bytes]]:
        with self._lock:
            out = []
            for path in sorted(self.dir.glob("*.json")):
                if (
                    _NAME_RE.match(path.name)
                    and not (self.dir / (path.name + _SENT_SUFFIX)).exists()
                ):
                    out.append((path.name, path.read_bytes()))
            return out

    def mark_sent(self, name: str) -> None:
        if not _NAME_RE.match(name):
            return
        with self._lock:
            marker = self.dir / (name + _SENT_SUFFIX)
            marker.touch(mode=0o600)

    def read(self, deployment_id: str) -> list[dict[str, Any]]:
        """The report bodies of one deployment (for the technician's CLI)."""
        from agent.trust.signed_document import parse_envelope

        bodies = []
        for path in sorted(self.dir.glob(f"{deployment_id}-*.json")):
            _, body, _ = parse_envelope(path.read_bytes())
            bodies.append(json.loads(body))
        return bodies

    def purge(self, now: float | None = None) -> int:
        """Delete reports older than the retention period (they hold no biometric data,
        but nothing on the device outlives the alert retention)."""
        now = time.time() if now is None else now
        removed = 0
        with self._lock:
            for path in self.dir.iterdir():
                try:
                    if now - path.stat().st_mtime > self.retention_s:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed
