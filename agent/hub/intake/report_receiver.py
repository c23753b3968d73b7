"""Deployment reports arriving at the hub: verify each device-signed summary (on
``lfr/v1/<dev>/event``) against the device's enrolled key and the protocol's schema, keep
it once in the report store, then acknowledge it.

The acknowledgement (``lfr/v1/<dev>/report-ack``, ``agent/protocol/report_ack.py``) is
sent after the store has the report, for a duplicate too, and carries the secret sealed
in the report's ``ack_box`` to the hub alert key: the camera resends the report until
that secret comes back. A report without ``ack_box`` (from a camera that predates
acknowledgements) is stored and not acknowledged.

A plates deployment's report has its own document type and schema
(``agent/protocol/plate_report.py``) and is kept in its own table (``PlateReportStore``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.errors import LfrError
from agent.hub.store.plate_report_store import PlateReportStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.protocol.deployment_report import REPORT_TYPE, report_field_problem
from agent.protocol.plate_report import PLATE_REPORT_TYPE, plate_report_field_problem
from agent.protocol.report_ack import encode_report_ack
from agent.protocol.topics import TopicError, parse_topic, report_ack_topic
from agent.trust.report_ack_secret import ReportAckError, open_secret, report_identity
from agent.trust.signed_document import DocumentError, open_document, parse_envelope

log = logging.getLogger(__name__)


class ReportError(LfrError):
    """A deployment report is malformed, unsigned, or not from the device it names."""

    exit_code = 1


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
    plates = _payload_type(payload) == PLATE_REPORT_TYPE
    try:
        doc = open_document(payload, PLATE_REPORT_TYPE if plates else REPORT_TYPE, lambda _kid: key)
    except DocumentError as exc:
        raise ReportError(f"report: {exc}") from exc
    body = doc.body
    problem = plate_report_field_problem(body) if plates else report_field_problem(body)
    if problem is not None:
        raise ReportError(f"report: {problem}")
    if body["device_id"] != device_id:
        raise ReportError(f"report: names device {body['device_id']!r} but came from {device_id!r}")
    return body


def _payload_type(payload: bytes) -> str | None:
    try:
        return parse_envelope(payload)[0]
    except DocumentError:
        return None


def is_plate_report(body: dict[str, Any]) -> bool:
    return body.get("analytic") == "plates"


class ReportReceiver:
    """Subscribed to ``lfr/v1/+/event`` by ``lfr-hub alerts watch``."""

    def __init__(
        self,
        store: DeploymentReportStore,
        device_key: Callable[[str], Ed25519PublicKey | None],
        on_report: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
        *,
        hub_key: X25519PrivateKey | None = None,
        acknowledge: Callable[[str, bytes], object] | None = None,
        plate_store: PlateReportStore | None = None,
    ) -> None:
        """``acknowledge(topic, payload)`` publishes (``MqttLink.publish``); with ``hub_key``
        (the alert private key, which opens each report's ``ack_box``) reports are acked."""
        self.store = store
        self.plate_store = plate_store or PlateReportStore(store.database)
        self.device_key = device_key
        self.on_report = on_report
        self.clock = clock
        self.hub_key = hub_key
        self.acknowledge = acknowledge
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0
        self.acked = 0

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
        store = self.plate_store if is_plate_report(body) else self.store
        if not store.add(body, payload, self.clock()):
            self.duplicates += 1
            self._ack(body)
            return "duplicate"
        self.stored += 1
        self._ack(body)
        if self.on_report is not None:
            self.on_report(body)
        return "stored"

    def _ack(self, body: dict[str, Any]) -> None:
        """After the store has it: the secret from its ``ack_box`` back to the camera."""
        box = body.get("ack_box")
        if self.hub_key is None or self.acknowledge is None or not isinstance(box, str):
            return
        device, deployment, seq = (
            body["device_id"],
            body["deployment_id"],
            body["activation_sequence"],
        )
        try:
            secret = open_secret(self.hub_key, box, report_identity(device, deployment, seq))
        except ReportAckError as exc:
            log.warning("%s (device %s): stored, not acknowledged", exc, device)
            return
        self.acknowledge(report_ack_topic(device), encode_report_ack([(deployment, seq, secret)]))
        self.acked += 1


def summary_line(body: dict[str, Any]) -> str:
    """One line an operator reads: what a deployment did."""
    if is_plate_report(body):
        return (
            f"plates report {body['device_id']} {body['deployment_id']} "
            f"(activation {body['activation_sequence']}): ended {body['end_reason']}; "
            f"{body['frames']} frames ({body['frames_read']} read), {body['vehicles']} vehicles,"
            f" {body['plates_read']} plates read, {body['hits']} hits, {body['alerts']} alerts;"
            f" threshold {body['threshold']}, hotlist {body['hotlist_size']} entries"
            f" ({body['hotlist_sha256'][:12]}…)"
        )
    return (
        f"report {body['device_id']} {body['deployment_id']} (activation {body['activation_sequence']}):"
        f" ended {body['end_reason']}; {body['frames']} frames, {body['faces_detected']} faces detected,"
        f" {body['faces_compared']} compared, {body['alerts']} alerts; threshold {body['threshold']},"
        f" watchlist {body['watchlist_size']} entries ({body['watchlist_sha256'][:12]}…)"
    )
