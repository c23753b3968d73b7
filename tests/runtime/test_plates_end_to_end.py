"""Plates end to end: a real mosquitto (shipped config, mTLS, per-client rights), the agent
as its own process on a replay of a street scene with two SYNTHETIC vehicles drawn in
(hil/synthetic_plates.py: OpenCV's font on DVLA-sized plates, not the real font), and the
hub receiver.

hotlist built from a CSV at the hub → sealed to the camera → plates activation → the
hotlisted vehicle's plate alert stored at the hub (plate tables only) → stop → the signed
plates report (counts only) → hotlist wiped. The other vehicle's plate is read too (the
report counts it) and must leave no trace: the test searches every file of the device's
state folder, the agent's log, and everything the camera published through the broker
(every kind a device may publish, captured by the hub's own subscriptions, plate alerts
decrypted) for both plates' text. Nothing is mocked; the camera is a replay.

A second test runs a faces deployment and a plates deployment at once on the same camera
(``plates.concurrent_with_faces``) and checks that the hub's records of the two share no
id and that nothing of one is in the other's tables.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime.daemon_world import DEPLOYMENT, Hub, NotifyListener, wait_for, watchlist_for

from agent.hub.intake.report_receiver import ReportReceiver
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.plate_alert_store import PlateAlertStore
from agent.hub.store.plate_report_store import PlateReportStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.hub.watchlists.hotlist_builder import build_hotlist, read_hotlist_csv
from agent.matching.watchlist_bundle import SealedBundle
from agent.protocol.topics import ALL_ALERTS, ALL_EVENTS, ALL_RECEIPTS, ALL_STATUSES
from agent.trust.activation_token import ANALYTIC_PLATES
from agent.trust.plate_alert_envelope import open_plate_alert
from hil.local_broker import MosquittoBroker
from hil.synthetic_plates import VehicleSpec, add_vehicles
from hil.virtual_site import VirtualSite

pytestmark = [pytest.mark.system, pytest.mark.slow]

HIT = "KX19 LMN"
MISS = "GD21 HVW"
PLATES_DEPLOYMENT = "dep-plates-e2e"
PLATES_CONFIG = "enabled = true\nmax_fps = 8.0\nmin_reads = 2"


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory, scene: Path) -> Path:
    """The daemon tests' street replay with two vehicles crossing it, one after another."""
    out = tmp_path_factory.mktemp("street") / "replay"
    shutil.copytree(scene, out)
    add_vehicles(
        out,
        [
            VehicleSpec(HIT, enter_s=0.3, seconds=2.6, width_px=460),
            VehicleSpec(MISS, enter_s=3.1, seconds=2.6, width_px=460, left_to_right=False),
        ],
        fps=15.0,
        seed=5,
    )
    return out


@pytest.fixture
def plates_site(
    tmp_path: Path, mqtt_broker: MosquittoBroker, plate_models_dir: Path
) -> Iterator[VirtualSite]:
    yield VirtualSite(tmp_path / "site", mqtt_broker, plate_models_dir, device_id="lfr-plt-e2e")


def _hotlist(site: VirtualSite, tmp_path: Path) -> tuple[SealedBundle, str]:
    csv = tmp_path / "hotlist.csv"
    csv.write_text(
        "plate,reason,category,expiry\n"
        f"{HIT},reported stolen,stolen,\n"
        "AB12 CDE,wanted,wanted,\n"
        "M123 ABC,wanted,wanted,\n"
    )
    rows, rejected = read_hotlist_csv(csv, time.time())
    assert not rejected
    result = build_hotlist(
        rows,
        rejected,
        deployment_id=PLATES_DEPLOYMENT,
        devices=[site.device_id],
        recipients={site.device_id: site.device_exchange_key()},
        signing_key=site.hub.watchlist_signing_key(),
        expires_in_s=12 * 3600,
        out=tmp_path / "hotlist.lfrhl",
    )
    refs = json.loads(result.map_path.read_text())["refs"]
    ref = next(r for r, v in refs.items() if v["plate"] == HIT)
    return result.bundle, ref


def _plates_activation(site: VirtualSite, bundle: SealedBundle) -> bytes:
    return site.issuer().activation(
        site.device_id,
        PLATES_DEPLOYMENT,
        3600,
        600,
        bundle.watchlist_hash,
        0.5,
        "PS 0002 Test",
        analytic=ANALYTIC_PLATES,
    )


def _forms(plate: str) -> list[bytes]:
    joined = plate.replace(" ", "")
    return [plate.encode(), joined.encode(), joined.lower().encode()]


def test_a_hotlisted_vehicle_reaches_the_hub_and_the_other_leaves_no_trace(
    plates_site: VirtualSite, street: Path, tmp_path: Path
) -> None:
    site = plates_site
    bundle, hit_ref = _hotlist(site, tmp_path)
    hub = Hub.start(site)
    reports_link = site.hub_link("reports")
    plate_reports = PlateReportStore(site.hub_db)
    report_bodies: list[dict[str, object]] = []
    faces_reports = DeploymentReportStore(plate_reports.database)
    reports_link.subscribe(
        ALL_EVENTS,
        ReportReceiver(
            faces_reports,
            hub.store.device_key,
            report_bodies.append,
            hub_key=site.hub.alert_private_key(),
            acknowledge=reports_link.publish,
            plate_store=plate_reports,
        ).handle,
    )
    # Everything a device may publish (the broker lets it publish nothing else).
    traffic: list[tuple[str, bytes]] = []
    capture = site.hub_link("capture")
    for topic in (ALL_ALERTS, ALL_EVENTS, ALL_RECEIPTS, ALL_STATUSES):
        capture.subscribe(topic, lambda t, p: traffic.append((t, bytes(p))))
    reports_link.start()
    capture.start()
    assert reports_link.wait_connected(10) and capture.wait_connected(10)

    site.write_device_config(street, fps=15, loop=True, plates=PLATES_CONFIG)
    notify = NotifyListener(tmp_path / "notify.sock")
    agent = site.start_device({"NOTIFY_SOCKET": str(notify.path)})
    try:
        wait_for("READY=1", lambda: notify.seen("READY=1"), 120)
        site.send_watchlist(reports_link, bundle)
        wait_for(
            "hotlist stored on the device",
            lambda: any((site.state_dir / "hotlists").glob(f"{bundle.watchlist_hash}*")),
            120,
        )
        site.send_control(reports_link, _plates_activation(site, bundle))
        wait_for(
            "a plate alert at the hub",
            lambda: any(r.outcome == "stored" and r.plate_alert for r in list(hub.receipts)),
            150,
        )
        alert = next(r.plate_alert for r in hub.receipts if r.plate_alert is not None)
        assert alert.content.plate == HIT
        assert alert.content.hotlist_entry == hit_ref
        assert alert.content.deployment_id == PLATES_DEPLOYMENT
        assert alert.content.confidence >= alert.content.threshold == 0.5
        assert alert.content.plate_jpeg[:2] == b"\xff\xd8"
        # Let the other vehicle cross at least once more before the stop.
        time.sleep(8)
        site.send_control(
            reports_link, site.issuer().stop(site.device_id, PLATES_DEPLOYMENT, "done")
        )
        wait_for("the plates report at the hub", lambda: bool(report_bodies), 120)
        wait_for(
            "the hotlist wiped",
            lambda: not any((site.state_dir / "hotlists").glob(f"{bundle.watchlist_hash}*")),
        )
        wait_for("the outbox empty", lambda: not any((site.state_dir / "outbox").glob("*.alert")))
    finally:
        code = agent.stop()
        hub.stop()
        reports_link.stop()
        capture.stop()
        notify.close()
    log_text = agent.log_text()
    assert code == 0, log_text[-3000:]

    report = report_bodies[0]
    assert report["analytic"] == "plates" and report["deployment_id"] == PLATES_DEPLOYMENT
    assert report["hotlist_size"] == 3 and report["hotlist_sha256"] == bundle.watchlist_hash
    # Both vehicles were read (the other one too), only one was a hit.
    assert isinstance(report["plates_read"], int) and report["plates_read"] >= 2, report
    assert isinstance(report["hits"], int) and report["hits"] >= 1
    stored = PlateAlertStore(site.hub_db)
    assert {r.plate for r in stored.list_alerts()} == {HIT}
    assert AlertStore(site.hub_db).count() == 0  # nothing in the face tables
    assert DeploymentReportStore(site.hub_db).latest() == []
    print(f"\nplates report: {report['plates_read']} plates read, {report['hits']} hits")

    # The non-hit plate: not on disk, not in the log, not on the network.
    for path in site.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for form in _forms(MISS):
                assert form not in data, f"{MISS} found in {path}"
    for form in _forms(MISS):
        assert form.decode() not in log_text
    assert traffic, "no device traffic captured"
    opened_plates = []
    for topic, payload in traffic:
        for form in _forms(MISS) + _forms(HIT):
            assert form not in payload, f"plate text in clear on {topic}"
        if re.fullmatch(r"lfr/v1/[^/]+/alert", topic):
            opened = open_plate_alert(
                payload,
                sender=site.device_id,
                device_key=site.device_keys.signing_public,
                hub_key=site.hub.alert_private_key(),
            )
            opened_plates.append(opened.content.plate)
    # Inside the sealed alerts: the hit only.
    assert opened_plates and set(opened_plates) == {HIT}
    # The hit plate itself is on the device only while its alert waits in the outbox.
    for path in site.state_dir.rglob("*"):
        if path.is_file() and "outbox" not in path.parts:
            for form in _forms(HIT):
                assert form not in path.read_bytes(), f"{HIT} found in {path}"


def test_faces_and_plates_at_once_leave_no_cross_reference(
    plates_site: VirtualSite,
    street: Path,
    tmp_path: Path,
    shared_data: Path,
    plate_models_dir: Path,
) -> None:
    site = plates_site
    hotlist, _ref = _hotlist(site, tmp_path)
    watchlist = watchlist_for(site, shared_data, plate_models_dir)
    hub = Hub.start(site)
    control = site.hub_link("control")
    control.start()
    assert control.wait_connected(10)
    site.write_device_config(
        street, fps=15, loop=True, plates=PLATES_CONFIG + "\nconcurrent_with_faces = true"
    )
    notify = NotifyListener(tmp_path / "notify.sock")
    agent = site.start_device({"NOTIFY_SOCKET": str(notify.path)})
    try:
        wait_for("READY=1", lambda: notify.seen("READY=1"), 120)
        site.send_watchlist(control, watchlist)
        site.send_watchlist(control, hotlist)
        wait_for(
            "both lists stored",
            lambda: (
                any((site.state_dir / "watchlists").glob(f"{watchlist.watchlist_hash}*"))
                and any((site.state_dir / "hotlists").glob(f"{hotlist.watchlist_hash}*"))
            ),
            120,
        )
        site.send_control(
            control,
            site.issuer().activation(
                site.device_id, DEPLOYMENT, 3600, 600, watchlist.watchlist_hash, 0.5, "PS 1"
            ),
        )
        site.send_control(control, _plates_activation(site, hotlist))

        def both() -> bool:
            kinds = {
                "face" if r.alert else "plate" for r in list(hub.receipts) if r.outcome == "stored"
            }
            return kinds == {"face", "plate"}

        wait_for("a face alert and a plate alert at the hub", both, 180)
    finally:
        code = agent.stop()
        control.stop()
        notify.close()
    assert code == 0, agent.log_text()[-3000:]
    faces, plates = hub.store, PlateAlertStore(site.hub_db)
    face_rows = faces.list_alerts(limit=1000)
    plate_rows = plates.list_alerts(1000)
    hub.stop()
    assert face_rows and plate_rows
    # Two deployments, each with its own id, list, and alerts: nothing shared.
    assert {r.deployment_id for r in face_rows} == {DEPLOYMENT}
    assert {r.deployment_id for r in plate_rows} == {PLATES_DEPLOYMENT}
    assert not {r.alert_id for r in face_rows} & {r.alert_id for r in plate_rows}
    assert not {r.watchlist_entry for r in face_rows} & {r.hotlist_entry for r in plate_rows}
    assert not {(r.track_id, r.deployment_id) for r in face_rows} & {
        (r.track_id, r.deployment_id) for r in plate_rows
    }
    # The device's audit log keeps each deployment's events under its own id.
    audit = (site.state_dir / "audit.jsonl").read_text()
    assert "hotlist.bound" in audit and "watchlist.bound" in audit
