"""Plate alerts and plates reports at the hub's intake: told apart by their signed type,
checked by their own rules, stored in the plate tables only, acknowledged like faces."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from support.alert_factory import AlertKeys, make_plate_content

from agent.cli.hub_main import main as hub_main
from agent.hub.intake.alert_receiver import AlertReceiver
from agent.hub.intake.report_receiver import ReportReceiver, summary_line
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.protocol.topics import alert_topic, event_topic
from agent.runtime.deployment_report import sign_report
from agent.runtime.plate_report import PlateDeploymentReport
from agent.trust.plate_alert_envelope import seal_plate_alert
from agent.trust.signed_document import sign_document

KEYS = AlertKeys.generate()
DEV = "lfr-plt-01"


@pytest.fixture
def store(hub_db_url: str) -> AlertStore:
    s = AlertStore(hub_db_url)
    s.register_device_key(DEV, KEYS.device.public_key())
    return s


def _sealed(seq: int, **changes: object) -> bytes:
    content = dataclasses.replace(make_plate_content(DEV, seq), **changes)  # type: ignore[arg-type]
    return seal_plate_alert(
        content, seq=seq, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
    ).envelope


def test_a_plate_alert_is_stored_in_the_plate_tables_only(store: AlertStore) -> None:
    receiver = AlertReceiver(store, KEYS.hub)
    payload = _sealed(1)
    receipt = receiver.receive(alert_topic(DEV), payload)
    assert receipt.outcome == "stored" and receipt.plate_alert is not None
    assert receipt.alert is None
    assert receiver.plate_store.count() == 1 and store.count() == 0
    again = receiver.receive(alert_topic(DEV), payload)
    assert again.outcome == "duplicate"
    # The ack carries the stored secret, for a duplicate too.
    assert receiver.ack_secret(again) == receipt.plate_alert.ack_secret
    row = receiver.plate_store.list_alerts()[0]
    assert row.plate == "AB12 CDE" and row.device_id == DEV


def test_a_plate_alert_from_another_camera_or_unenrolled_is_refused(store: AlertStore) -> None:
    receiver = AlertReceiver(store, KEYS.hub)
    # Sealed by this camera but sent on another camera's topic.
    assert receiver.receive(alert_topic("lfr-plt-02"), _sealed(2)).outcome == "rejected"
    other = AlertKeys.generate()
    store.register_device_key("lfr-plt-03", other.device.public_key())
    assert receiver.receive(alert_topic("lfr-plt-03"), _sealed(3)).outcome == "rejected"
    assert receiver.plate_store.count() == 0


def test_an_old_plate_alert_is_refused(store: AlertStore) -> None:
    receiver = AlertReceiver(store, KEYS.hub, max_age_s=60, clock=lambda: time.time() + 3600)
    receipt = receiver.receive(alert_topic(DEV), _sealed(4))
    assert receipt.outcome == "rejected" and "beyond retention" in (receipt.reason or "")


def _plate_report(seq: int = 2) -> PlateDeploymentReport:
    now = time.time()
    return PlateDeploymentReport(
        device_id=DEV,
        deployment_id="dep-plates-a",
        activation_sequence=seq,
        signer="ops-signer",
        officer="Insp. Lane",
        not_before=int(now) - 3600,
        not_after=int(now),
        opened_at=now - 3500,
        closed_at=now - 5,
        end_reason="stopped",
        hotlist_sha256="cd" * 32,
        hotlist_size=10_000,
        threshold=0.7,
        detector_model="ppocrv4-det",
        recogniser_model="ppocrv4-rec",
        frames=9000,
        frames_read=4500,
        frames_dropped=2,
        text_lines=800,
        plate_candidates=300,
        reads=250,
        vehicles=60,
        plates_read=55,
        hits=1,
        alerts=1,
        software_version="1.0.0",
    )


def test_a_plates_report_goes_to_its_own_table(store: AlertStore) -> None:
    reports = DeploymentReportStore(store.database)
    receiver = ReportReceiver(reports, store.device_key)
    signed = sign_report(_plate_report(), KEYS.device)
    assert receiver.receive(event_topic(DEV), signed) == "stored"
    assert receiver.receive(event_topic(DEV), signed) == "duplicate"
    assert reports.latest() == []
    (kept,) = receiver.plate_store.latest()
    assert kept.body["plates_read"] == 55
    line = summary_line(kept.body)
    assert "55 plates read, 1 hits" in line
    # A plates report with a face report's fields (or missing its own) is refused.
    body = _plate_report(3).body() | {"faces_detected": 3}
    bad = sign_document(PlateDeploymentReport.document_type, body, KEYS.device)
    assert receiver.receive(event_topic(DEV), bad) == "rejected"


def test_plate_alerts_are_listed_shown_and_adjudicated_at_the_cli(
    store: AlertStore, hub_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver = AlertReceiver(store, KEYS.hub)
    receipt = receiver.receive(alert_topic(DEV), _sealed(5))
    assert receipt.plate_alert is not None
    alert_id = receipt.plate_alert.header.alert_id
    assert hub_main(["plates", "list", "--db", hub_db_url]) == 0
    listed = capsys.readouterr().out
    assert alert_id in listed and "plate AB12 CDE" in listed and "open" in listed
    # Face alerts list nothing: the plate alert is not a face record.
    assert hub_main(["alerts", "list", "--db", hub_db_url]) == 0
    assert capsys.readouterr().out == ""
    out = tmp_path / "plate.jpg"
    assert hub_main(["plates", "show", alert_id, "--db", hub_db_url, "--plate", str(out)]) == 0
    assert out.read_bytes() == receipt.plate_alert.content.plate_jpeg
    capsys.readouterr()
    args = ["plates", "adjudicate", alert_id, "--db", hub_db_url]
    assert hub_main([*args, "--outcome", "confirmed-true", "--by", "PC 9"]) == 0
    assert "confirmed-true by PC 9" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        hub_main([*args, "--outcome", "nope", "--by", "PC 9"])
    assert exited.value.code == 2
    assert hub_main(["plates", "show", "f" * 32, "--db", hub_db_url]) == 3
