"""A deployment whose threshold the hub calibrated from a target false-alert rate, in S-norm:
the hub's calibration function picks the threshold for the very watchlist the camera holds,
the camera verifies the activation, alerts on the watched person only, and its signed
report and audit log carry the threshold, its kind, the target, the cohort size and the CI.

Real parts: mosquitto with the shipped config, hub keys and signed documents, the models,
the replay camera on a generated street scene, real crowd and labelled faces for the
watchlist fillers and the cohort.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime.daemon_world import DEPLOYMENT, PASSER_BY, WATCHED, audit_entries, wait_for

from agent.config import load_config
from agent.hub.calibration.threshold_calibration import calibrate
from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker, Receipt
from agent.hub.intake.report_receiver import ReportReceiver
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.matching.threshold_choice import ThresholdChoice
from agent.matching.watchlist_bundle import SealedBundle
from agent.protocol.topics import ALL_EVENTS
from agent.runtime.daemon import AgentDaemon
from agent.runtime.deployment_report import ReportArchive
from agent.vision.model_store import resolve_models
from agent.vision.still_photo import StillPhotoAnalyser
from hil.virtual_site import VirtualSite

pytestmark = [pytest.mark.system, pytest.mark.slow]
TARGET = 1 / 50


def _crowd_faces(analyser: StillPhotoAnalyser, shared_data: Path) -> np.ndarray:
    """Faces of people in group photos (deepface's own photos show people of the labelled set)."""
    rows = []
    for photo in sorted((shared_data / "scenes/many_faces").iterdir()):
        if photo.name.startswith("deepface__"):
            continue
        image = cv2.imread(str(photo))
        if image is None:
            continue
        rows += [analyser.embed(image, d) for d in analyser.detect(image)
                 if analyser.assess(image, d).passes]  # fmt: skip
    return np.array(rows, np.float32)


@pytest.fixture(scope="module")
def calibrated(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, models_dir: Path
) -> tuple[np.ndarray, list[str], ThresholdChoice]:
    """The watchlist (the watched person among 80 crowd faces) and the hub's threshold for it,
    calibrated on the other crowd faces and every labelled photo of other people."""
    analyser = StillPhotoAnalyser(resolve_models(models_dir))
    watched = analyser.embed_central(cv2.imread(str(shared_data / "faces" / WATCHED / "1.jpg")))
    assert watched is not None
    crowd = _crowd_faces(analyser, shared_data)
    entries = np.concatenate([watched[None, :], crowd[:80]])
    refs = ["subject-0001", *(f"crowd-{i:04d}" for i in range(80))]
    labelled = [
        analyser.embed_central(cv2.imread(str(p)))
        for p in sorted((shared_data / "faces").glob("*/*.jpg"))
        if p.parent.name != WATCHED
    ]
    cohort = np.concatenate([crowd[80:], np.array([e for e in labelled if e is not None])])
    choice = calibrate((entries, refs), cohort, score="snorm", target_fpir=TARGET)
    return entries, refs, choice


@pytest.fixture
def daemon(site: VirtualSite, scene: Path) -> Iterator[AgentDaemon]:
    d = AgentDaemon(load_config(site.write_device_config(scene, fps=15, loop=True)))
    d.start()
    try:
        yield d
    finally:
        d.shutdown()


def test_a_calibrated_snorm_activation_alerts_and_reports_its_calibration(
    site: VirtualSite,
    daemon: AgentDaemon,
    models_dir: Path,
    calibrated: tuple[np.ndarray, list[str], ThresholdChoice],
) -> None:
    entries, refs, choice = calibrated
    cal = choice.calibration
    assert cal.cohort_size * TARGET >= 3 and cal.fpir <= TARGET
    # The hub: alerts received and acknowledged, reports checked against the device key.
    store = AlertStore(site.hub_db)
    receipts: list[Receipt] = []
    hub_link = site.hub_link()
    worker = HubAlertWorker(
        hub_link, AlertReceiver(store, site.hub.alert_private_key()), on_receipt=receipts.append
    )
    reports: list[dict[str, object]] = []
    hub_link.subscribe(
        ALL_EVENTS,
        ReportReceiver(DeploymentReportStore(site.hub_db), store.device_key, reports.append).handle,
    )
    worker.start()
    try:
        assert hub_link.wait_connected(10)
        models = resolve_models(models_dir)
        bundle: SealedBundle = site.build_watchlist(
            refs, entries, DEPLOYMENT, models["embedder"].model_id, models["embedder"].sha256
        )
        daemon.watchlists.import_bundle(bundle.data)
        token = site.issuer().activation(
            site.device_id, DEPLOYMENT, 3600, 600, bundle.watchlist_hash, choice.threshold,
            "PS 0001", score="snorm", target_fpir=TARGET, calibration=cal,
        )  # fmt: skip
        assert daemon.handle_control_document(token) == f"activated {DEPLOYMENT}"
        started = audit_entries(site, "deployment.started")[-1]
        assert started["threshold"] == choice.threshold and started["threshold_kind"] == "snorm"
        assert started["target_fpir"] == TARGET and started["cohort_size"] == cal.cohort_size
        assert (started["fpir_ci95_low"], started["fpir_ci95_high"]) == cal.fpir_ci95
        wait_for("an alert at the hub", lambda: any(r.outcome == "stored" for r in receipts), 120)
        stop = site.issuer().stop(site.device_id, DEPLOYMENT, "officers left")
        assert daemon.handle_control_document(stop).startswith(f"stopped {DEPLOYMENT}")
        wait_for("the deployment report at the hub", lambda: bool(reports))
    finally:
        worker.stop()
        store.close()
    alerts = [r.alert for r in receipts if r.outcome == "stored" and r.alert is not None]
    # The watched person alerted, in S-norm; the passer-by and the crowd never did.
    assert {a.content.watchlist_entry for a in alerts} == {"subject-0001"}, PASSER_BY
    assert all(a.content.score >= a.content.threshold == choice.threshold for a in alerts)
    (report,) = reports
    assert report["threshold"] == choice.threshold and report["threshold_kind"] == "snorm"
    assert report["target_fpir"] == TARGET and report["calibration"] == cal.body()
    assert report["watchlist_size"] == 81 and report["alerts"] == len(alerts)
    (kept,) = ReportArchive(site.state_dir, 86400.0).read(DEPLOYMENT)
    assert kept == report
