"""The per-deployment results summary: built at the end of every activation, signed by the
device, kept locally and published on the event topic until the hub acknowledges it.

It holds aggregate figures only (frames, faces, alerts, threshold, watchlist size and
hash, model ids, the window and why it ended) so deployments can be published. When the
threshold was derived from a target false-alert rate, the report also carries the target,
the calibration cohort's size and the 95 % confidence interval of the rate it achieved.

Delivery is the alerts' (docs/protocol.md, section 14): the report carries an
``ack_box``, a secret sealed to the hub alert key (``agent/trust/report_ack_secret.py``);
the camera publishes it after every reconnect and every ``outbox.resend_after_s`` until an
acknowledgement on ``lfr/v1/<dev>/report-ack`` brings that secret back, then writes an
``.acked`` marker. A PUBACK from the broker proves nothing. Reports written before
acknowledgements existed (no ``ack_box``) keep their old rule: done once the broker took
them (``.sent``).
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
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.protocol.deployment_report import REPORT_TYPE
from agent.protocol.fields import NAME_PATTERN
from agent.trust.key_files import write_atomic
from agent.trust.report_ack_secret import (
    derive_secret,
    report_identity,
    seal_secret,
    secret_matches,
)
from agent.trust.signed_document import (
    DocumentError,
    UntrustedJsonError,
    loads_untrusted,
    parse_envelope,
    sign_document,
)

REPORTS_DIR = "reports"
_SENT_SUFFIX = ".sent"
_ACKED_SUFFIX = ".acked"
# A deployment id may hold "-", "." and "_": the sequence is what follows the last "-".
_NAME_RE = re.compile(rf"^(?P<deployment>{NAME_PATTERN})-(?P<seq>[0-9]{{1,20}})\.json$")

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
    # The score kind of ``threshold`` and, when it came from a target rate, its calibration.
    threshold_kind: str = "cosine"
    target_fpir: float | None = None
    calibration: dict[str, Any] | None = None
    # CCTV recording (docs/privacy.md): whether the signed activation turned it on, how
    # many sealed segments and bytes it wrote, and why it stopped early ("" if it did not).
    recording: bool = False
    recording_segments: int = 0
    recording_bytes: int = 0
    recording_stopped: str = ""

    def body(self) -> dict[str, Any]:
        data = asdict(self)
        data["v"] = 1
        return data


def report_name(deployment_id: str, activation_sequence: int) -> str:
    return f"{deployment_id}-{activation_sequence}.json"


class SignableReport(Protocol):
    """A faces or a plates deployment report (``agent/runtime/plate_report.py``)."""

    @property
    def device_id(self) -> str: ...

    @property
    def deployment_id(self) -> str: ...

    @property
    def activation_sequence(self) -> int: ...

    def body(self) -> dict[str, Any]: ...


def sign_report(
    report: SignableReport,
    device_key: Ed25519PrivateKey,
    hub_key: X25519PublicKey | None = None,
) -> bytes:
    """The signed report; with ``hub_key``, carrying the sealed acknowledgement secret.
    Its document type is the report's own (``document_type``; faces by default)."""
    body = report.body()
    if hub_key is not None:
        identity = report_identity(
            report.device_id, report.deployment_id, report.activation_sequence
        )
        body["ack_box"] = seal_secret(hub_key, derive_secret(device_key, identity), identity)
    return sign_document(getattr(report, "document_type", REPORT_TYPE), body, device_key)


class ReportArchive:
    """Signed reports under ``<state_dir>/reports``, with ``.acked`` (the hub proved it
    stored one) or, for reports without an ack secret, ``.sent`` (the broker took it)."""

    def __init__(self, state_dir: Path, retention_s: float) -> None:
        self.dir = state_dir / REPORTS_DIR
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.retention_s = retention_s
        self._lock = threading.Lock()

    def save(self, report: SignableReport, signed: bytes) -> str:
        name = report_name(report.deployment_id, report.activation_sequence)
        write_atomic(self.dir / name, signed, 0o600)
        return name

    def pending(self) -> list[tuple[str, bytes]]:
        """Reports still to be delivered, oldest name first: not acknowledged (or, without
        an ack secret, not yet taken by the broker)."""
        with self._lock:
            out = []
            for path in sorted(self.dir.glob("*.json")):
                if not _NAME_RE.match(path.name) or self._marker(path.name, _ACKED_SUFFIX):
                    continue
                signed = path.read_bytes()
                if not _wants_ack(signed) and self._marker(path.name, _SENT_SUFFIX):
                    continue
                out.append((path.name, signed))
            return out

    def unsent(self) -> list[tuple[str, bytes]]:
        return self.pending()

    def mark_sent(self, name: str) -> None:
        """The broker took it (PUBACK): final only for a report without an ack secret."""
        self._touch(name, _SENT_SUFFIX)

    def acknowledge(
        self,
        device_id: str,
        deployment_id: str,
        seq: int,
        secret: bytes,
        device_key: Ed25519PrivateKey,
    ) -> bool:
        """Mark a report delivered if ``secret`` is the one sealed in it; False otherwise
        (a forged or stray acknowledgement: nothing changes)."""
        name = report_name(deployment_id, seq)
        if not _NAME_RE.match(name) or not (self.dir / name).is_file():
            return False
        expected = derive_secret(device_key, report_identity(device_id, deployment_id, seq))
        if not secret_matches(expected, secret):
            return False
        self._touch(name, _ACKED_SUFFIX)
        return True

    def _marker(self, name: str, suffix: str) -> bool:
        return (self.dir / (name + suffix)).exists()

    def _touch(self, name: str, suffix: str) -> None:
        if not _NAME_RE.match(name):
            return
        with self._lock:
            marker = self.dir / (name + suffix)
            marker.touch(mode=0o600)

    def read(self, deployment_id: str) -> list[dict[str, Any]]:
        """The report bodies of one deployment (for the technician's CLI)."""
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


def _wants_ack(signed: bytes) -> bool:
    """Whether a stored report carries an ack secret (and so waits for the hub's ack)."""
    try:
        _, body, _ = parse_envelope(signed)
        fields = loads_untrusted(body)
    except (DocumentError, UntrustedJsonError):
        return False
    return isinstance(fields, dict) and "ack_box" in fields
