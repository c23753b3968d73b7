"""``lfr-agent run`` end to end: a real mosquitto (shipped config, mTLS, ACL), the agent as
its own process on a replay of a generated street scene, and the hub receiver.

activate → match → sealed alert stored at the hub → stop → signed report at the hub →
watchlist wiped, with the systemd notifications (READY … STOPPING) read from a socket the
test binds, and a clean SIGTERM. Nothing is mocked; the camera is a replay.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.camera.frame_source import Frame
from agent.hub.alert_receiver import AlertReceiver, HubAlertWorker, Receipt
from agent.hub.alert_store import AlertStore
from agent.hub.deployment_reports import DeploymentReportStore, ReportReceiver
from agent.matching.watchlist_bundle import SealedBundle
from agent.transport.mqtt_link import MqttLink
from agent.transport.topics import ALL_EVENTS, status_topic
from agent.trust.audit_log import verify_audit_log
from agent.trust.device_keys import load_device_signing_public
from agent.vision.face_pipeline import MatchCandidate
from agent.vision.model_store import resolve_models
from agent.vision.still_photo import StillPhotoAnalyser
from hil.local_broker import MosquittoBroker
from hil.synthetic_scene import SceneSpec, generate_scene
from hil.virtual_site import VirtualSite

pytestmark = [pytest.mark.system, pytest.mark.slow]

WATCHED = "deepface_id01"
PASSER_BY = "deepface_id10"
DEPLOYMENT = "dep-e2e-001"


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def seen(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for m in self.messages for line in m.splitlines())


@pytest.fixture
def scene(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, models_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("scene")
    spec = SceneSpec(
        fps=15.0,
        seconds=6.0,
        identities=(WATCHED, PASSER_BY),
        exclude_photos=(f"{WATCHED}/1.jpg",),
        occluder=False,
        seed=3,
    )
    generate_scene(
        out, spec, shared_data / "faces", shared_data / "scenes" / "no_faces", models_dir=models_dir
    )
    return out


@pytest.fixture
def site(tmp_path: Path, mqtt_broker: MosquittoBroker, models_dir: Path) -> Iterator[VirtualSite]:
    yield VirtualSite(tmp_path / "site", mqtt_broker, models_dir, device_id="lfr-e2e-01")


def watchlist_for(site: VirtualSite, shared_data: Path, models_dir: Path) -> SealedBundle:
    models = resolve_models(models_dir)
    image = cv2.imread(str(shared_data / "faces" / WATCHED / "1.jpg"))
    assert image is not None
    embedding = StillPhotoAnalyser(models).embed_central(image)
    assert embedding is not None
    return site.build_watchlist(
        ["subject-0001"],
        np.stack([embedding]),
        DEPLOYMENT,
        models["embedder"].model_id,
        models["embedder"].sha256,
    )


def deliver_and_activate(site: VirtualSite, control: MqttLink, bundle: SealedBundle) -> None:
    """The hub sends the watchlist, waits until the device holds it, then activates."""
    site.send_watchlist(control, bundle)
    wait_for(
        "watchlist stored",
        lambda: any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*")),
    )
    site.send_control(
        control,
        site.issuer().activation(
            site.device_id, DEPLOYMENT, 3600, 600, bundle.watchlist_hash, 0.5, "PS 0001 Test"
        ),
    )


def test_a_deployment_end_to_end(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path, tmp_path: Path
) -> None:
    bundle = watchlist_for(site, shared_data, models_dir)

    # The hub: receiver + acks for alerts, reports on the event topic.
    store = AlertStore(site.hub_db)
    receipts: list[Receipt] = []
    hub_link = site.hub_link()
    worker = HubAlertWorker(
        hub_link,
        AlertReceiver(store, site.hub.alert_private_key()),
        on_receipt=receipts.append,
    )
    reports = DeploymentReportStore(site.hub_db)
    report_bodies: list[dict[str, object]] = []
    hub_link.subscribe(
        ALL_EVENTS, ReportReceiver(reports, store.device_key, report_bodies.append).handle
    )
    statuses: list[bytes] = []
    hub_link.subscribe(status_topic(site.device_id), lambda _t, p: statuses.append(p))
    worker.start()
    assert hub_link.wait_connected(10)

    site.write_device_config(scene, fps=15, loop=True)
    notify = NotifyListener(tmp_path / "notify.sock")
    agent = site.start_device({"NOTIFY_SOCKET": str(notify.path)})
    try:
        wait_for("READY=1", lambda: notify.seen("READY=1"), 120)
        site.send_watchlist(hub_link, bundle)
        wait_for(
            "watchlist stored on the device",
            lambda: any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*")),
        )
        # No activation yet: the camera has never been opened.
        audit_text = (site.state_dir / "audit.jsonl").read_text()
        assert "gate.opened" not in audit_text

        t_activate = time.time()
        site.send_control(
            hub_link,
            site.issuer().activation(
                site.device_id, DEPLOYMENT, 3600, 600, bundle.watchlist_hash, 0.5, "PS 0001 Test"
            ),
        )
        wait_for("an alert at the hub", lambda: any(r.outcome == "stored" for r in receipts))
        alert = next(r.alert for r in receipts if r.outcome == "stored" and r.alert is not None)
        assert alert.content.watchlist_entry == "subject-0001"
        assert alert.content.deployment_id == DEPLOYMENT
        assert alert.content.score >= alert.content.threshold == 0.5
        crop = cv2.imdecode(np.frombuffer(alert.content.probe_jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert crop is not None and crop.shape[0] > 20
        latency = store.get(alert.header.alert_id).received_at - alert.content.first_seen
        print(f"\nalert latency (first seen on device -> stored at hub): {latency * 1000:.0f} ms")
        print(
            f"activation -> alert stored: {(time.time() - t_activate):.1f} s (includes walking in)"
        )

        site.send_control(hub_link, site.issuer().stop(site.device_id, DEPLOYMENT, "officers left"))
        wait_for("the deployment report at the hub", lambda: bool(report_bodies))
        report = report_bodies[0]
        assert report["deployment_id"] == DEPLOYMENT
        assert report["end_reason"] == "stopped"
        assert report["watchlist_size"] == 1
        assert report["watchlist_sha256"] == bundle.watchlist_hash
        assert report["threshold"] == 0.5
        assert isinstance(report["frames"], int) and report["frames"] > 0
        assert isinstance(report["faces_detected"], int) and report["faces_detected"] > 0
        assert isinstance(report["alerts"], int) and report["alerts"] >= 1
        # Wiped at the end of the deployment: no sealed watchlist left on the device.
        wait_for(
            "the watchlist wiped",
            lambda: not any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*")),
        )
        # Every alert the device sealed reached the hub exactly once.
        wait_for("the outbox empty", lambda: not any((site.state_dir / "outbox").glob("*.alert")))
    finally:
        code = agent.stop()
        worker.stop()
        notify.close()
    log_text = agent.log_text()
    assert code == 0, log_text[-3000:]
    stored = [r for r in receipts if r.outcome == "stored"]
    assert (
        len({r.alert.header.alert_id for r in stored if r.alert}) == len(stored) == report["alerts"]
    )

    # systemd saw the service become ready, report status, and stop.
    lines = [line for m in notify.messages for line in m.splitlines()]
    firsts = [
        next(i for i, line in enumerate(lines) if line.startswith(p))
        for p in ("READY=1", "STATUS=", "STOPPING=1")
    ]
    assert firsts[0] < firsts[2] and firsts[1] < firsts[2]
    assert statuses and statuses[-1] == b"offline"

    # The audit trail is intact and records the whole story.
    audit = (site.state_dir / "audit.jsonl").read_bytes()
    verify_audit_log(audit, load_device_signing_public(site.keys_dir))
    text = audit.decode()
    for event in (
        "agent.started",
        "deployment.started",
        "gate.opened",
        "alert.sealed",
        "gate.closed",
        "deployment.ended",
        "agent.stopped",
    ):
        assert event in text, event
    # No biometric figure ever reaches the logs.
    assert "score" not in log_text.lower()
    store.close()
    reports.close()


def test_sigterm_mid_deployment_loses_no_alert(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path
) -> None:
    bundle = watchlist_for(site, shared_data, models_dir)
    control = site.hub_link("hub-control-only")
    control.start()
    assert control.wait_connected(10)
    site.write_device_config(scene, fps=15, loop=True)
    agent = site.start_device()
    outbox = site.state_dir / "outbox"
    try:
        wait_for("the agent connected", lambda: "agent ready" in agent.log_text(), 120)
        deliver_and_activate(site, control, bundle)
        # No hub worker is listening: the alert is sealed but never acknowledged.
        wait_for("an alert in the outbox", lambda: any(outbox.glob("*.alert")))
    finally:
        code = agent.stop()
    assert code == 0, agent.log_text()[-3000:]
    held = sorted(p.name for p in outbox.glob("*.alert"))
    assert held, "the unacknowledged alert must survive SIGTERM on disk"
    audit = (site.state_dir / "audit.jsonl").read_text()
    assert '"reason":"shutdown"' in audit

    # The hub comes up, the agent restarts: the held alerts are delivered exactly once.
    store = AlertStore(site.hub_db)
    receipts: list[Receipt] = []
    worker = HubAlertWorker(
        site.hub_link(),
        AlertReceiver(store, site.hub.alert_private_key()),
        on_receipt=receipts.append,
    )
    worker.start()
    agent = site.start_device()
    try:
        wait_for("the held alerts at the hub", lambda: store.count() >= len(held))
        wait_for("the outbox empty", lambda: not any(outbox.glob("*.alert")))
    finally:
        assert agent.stop() == 0
        worker.stop()
        control.stop()
    assert store.count() == len(held)
    store.close()


def test_watchdog_pings_stop_when_the_pipeline_stalls(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path, tmp_path: Path
) -> None:
    """In-process daemon, so the test can wedge its vision stage like a hung model would."""
    from agent.config import load_config
    from agent.runtime.daemon import AgentDaemon
    from agent.runtime.sd_notify import SystemdNotifier

    bundle = watchlist_for(site, shared_data, models_dir)
    notify = NotifyListener(tmp_path / "notify.sock")
    cfg = load_config(site.write_device_config(scene, fps=15, loop=True))
    control = site.hub_link("hub-control-only")
    control.start()
    assert control.wait_connected(10)
    import os

    os.environ["WATCHDOG_USEC"] = "400000"  # pings every 0.2 s
    try:
        daemon = AgentDaemon(cfg, notifier=SystemdNotifier(str(notify.path)))
    finally:
        del os.environ["WATCHDOG_USEC"]
    release = threading.Event()
    real_process = daemon.pipeline.process

    def wedged(frame: Frame) -> list[MatchCandidate]:
        release.wait(60)  # a model call that never returns
        return real_process(frame)

    daemon.start()
    try:
        site.send_watchlist(control, bundle)
        wait_for("watchlist stored", lambda: any((site.state_dir / "watchlists").glob("*")))
        wait_for("watchdog pings", lambda: notify.seen("WATCHDOG=1"))
        daemon.pipeline.process = wedged  # type: ignore[method-assign]
        site.send_control(
            control,
            site.issuer().activation(
                site.device_id,
                DEPLOYMENT,
                3600,
                600,
                bundle.watchlist_hash,
                0.5,
                "PS 0001 Test",
            ),
        )
        wait_for("the camera open", lambda: daemon._state == "active")
        # Pings stop once the vision deadline has passed without progress.
        wait_for("the stall detected", lambda: not daemon.watchdog.healthy, 60)
        pings_at_stall = daemon.watchdog.pings
        time.sleep(2.0)  # ten ping intervals
        assert daemon.watchdog.pings == pings_at_stall
        release.set()
        wait_for("pings resume", lambda: daemon.watchdog.pings > pings_at_stall, 30)
    finally:
        release.set()
        daemon.shutdown()
        control.stop()
        notify.close()
    lines = [line for m in notify.messages for line in m.splitlines()]
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(p))
        for p in ("READY=1", "WATCHDOG=1", "STATUS=", "STOPPING=1")
    ]
    assert order[0] < order[1] < order[3] and order[2] < order[3]


def test_a_watchlist_wiped_by_the_technician_closes_the_camera(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path
) -> None:
    import subprocess
    import sys

    from agent.config import load_config
    from agent.runtime.capture_gate import GateState
    from agent.runtime.daemon import AgentDaemon

    bundle = watchlist_for(site, shared_data, models_dir)
    cfg = load_config(site.write_device_config(scene, fps=15, loop=True))
    control = site.hub_link("hub-control-only")
    control.start()
    assert control.wait_connected(10)
    daemon = AgentDaemon(cfg)
    daemon.start()
    try:
        deliver_and_activate(site, control, bundle)
        wait_for("the camera open", lambda: daemon.gate.state is GateState.ACTIVE)
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "agent.cli.agent_main",
                "watchlist",
                "wipe",
                "--config",
                str(site.config_path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        wait_for("the camera closed", lambda: daemon.gate.state is GateState.IDLE, 15)
    finally:
        daemon.shutdown()
        control.stop()
    closes = [
        json.loads(line)
        for line in (site.state_dir / "audit.jsonl").read_text().splitlines()
        if '"gate.closed"' in line
    ]
    assert closes and closes[0]["fields"]["reason"] == "watchlist-missing"
    assert not any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*"))


def test_reactivating_the_live_deployment_keeps_its_watchlist(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path
) -> None:
    from agent.config import load_config
    from agent.runtime.capture_gate import GateState
    from agent.runtime.daemon import AgentDaemon

    bundle = watchlist_for(site, shared_data, models_dir)
    cfg = load_config(site.write_device_config(scene, fps=15, loop=True))
    daemon = AgentDaemon(cfg)
    daemon.start()
    try:
        assert daemon.watchlists.import_bundle(bundle.data).status == "stored"
        for duration in (600, 3600):  # the operator extends the window with a new activation
            result = daemon.handle_control_document(
                site.issuer().activation(
                    site.device_id,
                    DEPLOYMENT,
                    duration,
                    300,
                    bundle.watchlist_hash,
                    0.5,
                    "PS 0001",
                )
            )
            assert result == f"activated {DEPLOYMENT}", result
            assert daemon.gate.state is GateState.ACTIVE
        assert any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*"))
        assert (
            daemon.handle_control_document(
                site.issuer().stop(site.device_id, DEPLOYMENT, "officers left")
            )
            == f"stopped {DEPLOYMENT}"
        )
    finally:
        daemon.shutdown()
    audit = [json.loads(line) for line in (site.state_dir / "audit.jsonl").read_text().splitlines()]
    ended = [e["fields"]["reason"] for e in audit if e["event"] == "deployment.ended"]
    assert ended == ["reactivated", "stopped"]
    stops = [e["fields"] for e in audit if e["event"] == "control.stop"]
    assert stops and stops[0]["reason"] == "officers left"
    assert not any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*"))
