"""The plates deployment's signed results summary: counts of frames, vehicles, plates read
and hits (never a plate), the hotlist's hash and size, the threshold and models, the
window and why it ended. Kept and delivered like the faces report (``ReportArchive``,
acknowledged by the hub), under its own document type (``agent/protocol/plate_report.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from agent.protocol.plate_report import PLATE_REPORT_TYPE


@dataclass(frozen=True)
class PlateDeploymentReport:
    device_id: str
    deployment_id: str
    activation_sequence: int
    signer: str
    officer: str
    not_before: int
    not_after: int
    opened_at: float | None
    closed_at: float
    end_reason: str
    hotlist_sha256: str
    hotlist_size: int
    threshold: float
    detector_model: str
    recogniser_model: str
    frames: int
    frames_read: int
    frames_dropped: int
    text_lines: int
    plate_candidates: int
    reads: int
    vehicles: int
    plates_read: int
    hits: int
    alerts: int
    software_version: str
    audit_seq: int = 0
    audit_sha256: str = ""

    document_type = PLATE_REPORT_TYPE

    def body(self) -> dict[str, Any]:
        data = asdict(self)
        data["v"] = 1
        data["analytic"] = "plates"
        return data
