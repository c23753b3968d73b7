"""``lfr-agent run`` end to end: a real mosquitto (shipped config, mTLS, ACL), the agent as
its own process on a replay of a generated street scene, and the hub receiver.

activate → match → sealed alert stored at the hub → stop → signed report at the hub →
watchlist wiped, with the systemd notifications (READY … STOPPING) read from a socket the
test binds, and a clean SIGTERM. Nothing is mocked; the camera is a replay.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime.daemon_world import (
    DEPLOYMENT,
    Hub,
    NotifyListener,
    activation,
    audit_entries,
    deliver_and_activate,
    wait_for,
    watchlist_for,
)

from agent.camera.frame_source import BgrImage, Frame, FrameSource
from agent.errors import CameraError
from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker, Receipt
from agent.hub.intake.report_receiver import ReportReceiver
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.protocol.topics import ALL_EVENTS, status_topic
from agent.runtime.deployment_report import ReportArchive
from agent.trust.audit_log import verify_audit_log
from agent.trust.device_keys import load_device_signing_public
from hil.virtual_site import VirtualSite

pytestmark = [pytest.mark.system, pytest.mark.slow]


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
        ALL_EVENTS,
        ReportReceiver(
            reports,
            store.device_key,
            report_bodies.append,
            hub_key=site.hub.alert_private_key(),
            acknowledge=hub_link.publish,
        ).handle,
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
        # The scene context image: the decision's frame, downscaled, the face boxed in amber.
        assert alert.content.scene_jpeg is not None
        scene_image = cv2.imdecode(
            np.frombuffer(alert.content.scene_jpeg, np.uint8), cv2.IMREAD_COLOR
        )
        assert scene_image is not None and max(scene_image.shape[:2]) <= 640
        amber = (
            (scene_image[:, :, 2] > 200)
            & (scene_image[:, :, 1] > 150)
            & (scene_image[:, :, 0] < 80)
        )
        assert amber.sum() > 100, "no box drawn on the scene image"
        assert store.crop(alert.header.alert_id, "scene") == alert.content.scene_jpeg
        print(
            f"scene image {scene_image.shape[1]}x{scene_image.shape[0]}, "
            f"{len(alert.content.scene_jpeg)} bytes; probe crop {len(alert.content.probe_jpeg)} bytes"
        )
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
        # The hub acknowledged it with the secret sealed in it: the camera stops resending.
        wait_for(
            "the report acknowledged on the device",
            lambda: any((site.state_dir / "reports").glob(f"{DEPLOYMENT}-*.json.acked")),
        )
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
    control = site.hub_link("control-only")
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
    ended = audit_entries(site, "deployment.ended")
    assert [e["reason"] for e in ended] == ["shutdown"]
    sealed = {e["alert_id"] for e in audit_entries(site, "alert.sealed")}
    (report,) = ReportArchive(site.state_dir, 86400).read(DEPLOYMENT)
    # Every alert the deployment raised was sealed, and every sealed one is still held.
    assert report["alerts"] == ended[0]["alerts"] == len(sealed) == len(held)
    assert {name.split("-", 1)[1].removesuffix(".alert") for name in held} == sealed
    assert not audit_entries(site, "alert.lost")

    # The hub comes up, the agent restarts: the held alerts are delivered exactly once.
    hub = Hub.start(site)
    agent = site.start_device()
    try:
        wait_for("the held alerts at the hub", lambda: len(hub.stored_ids()) >= len(held))
        wait_for("the outbox empty", lambda: not any(outbox.glob("*.alert")))
    finally:
        assert agent.stop() == 0
        control.stop()
    try:
        assert hub.stored_ids() == sealed
        assert hub.store.count() == report["alerts"]
    finally:
        hub.stop()


class ManualTime:
    """The watchdog's clock, moved by the test: a deadline passes when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_watchdog_pings_stop_when_the_pipeline_stalls(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path, tmp_path: Path
) -> None:
    """In-process daemon, so the test can wedge its vision stage like a hung model would.

    The watchdog runs on a clock the test moves, and each round is a ``check()`` the test
    makes: whether a ping went out is counted on the socket, not guessed from a sleep."""
    from agent.config import load_config
    from agent.runtime.daemon import PROGRESS_DEADLINE_S, AgentDaemon
    from agent.runtime.progress_watchdog import ProgressWatchdog
    from agent.runtime.sd_notify import SystemdNotifier
    from agent.vision.face_pipeline import MatchCandidate

    bundle = watchlist_for(site, shared_data, models_dir)
    notify = NotifyListener(tmp_path / "notify.sock")
    cfg = load_config(site.write_device_config(scene, fps=15, loop=True))
    clock = ManualTime()
    notifier = SystemdNotifier(str(notify.path))
    # The thread's own rounds are an hour apart: the rounds that count are the test's.
    wd = ProgressWatchdog(notifier, 3600.0, clock=clock)
    daemon = AgentDaemon(cfg, notifier=notifier, watchdog=wd)
    release = threading.Event()
    entered = threading.Event()
    real_process = daemon.pipeline.process

    def wedged(frame: Frame) -> list[MatchCandidate]:
        entered.set()
        release.wait(60)  # a model call that never returns
        return real_process(frame)

    def ping_round() -> bool:
        sent = wd.check()
        wait_for("the datagrams", lambda: notify.count("WATCHDOG=1") == wd.pings, 10)
        return sent

    daemon.start()
    try:
        wait_for("the thread's first round", lambda: wd.rounds >= 1)
        assert daemon.watchlists.import_bundle(bundle.data).status == "stored"
        assert ping_round() and wd.pings == 2
        daemon.pipeline.process = wedged  # type: ignore[method-assign]
        result = daemon.handle_control_document(activation(site, bundle))
        assert result == f"activated {DEPLOYMENT}", result
        wait_for("the model call hung", entered.is_set)
        clock.now += PROGRESS_DEADLINE_S + 1
        # Capture (frames keep coming) and control beat on the new clock; vision cannot.
        wait_for("only vision stalled", lambda: wd.stalled() == ["vision"])
        for _ in range(10):
            assert not ping_round()
        assert wd.pings == 2 and notify.count("WATCHDOG=1") == 2
        release.set()
        wait_for("vision progressing again", lambda: not wd.stalled())
        assert ping_round() and notify.count("WATCHDOG=1") == 3
    finally:
        release.set()
        daemon.shutdown()
        control_order = notify.lines()
        notify.close()
    order = [
        next(i for i, line in enumerate(control_order) if line.startswith(p))
        for p in ("READY=1", "WATCHDOG=1", "STATUS=", "STOPPING=1")
    ]
    assert order[0] < order[1] < order[3] and order[2] < order[3]


class HangingCamera(FrameSource):
    """A camera whose read never returns (a wedged driver) until it is closed."""

    kind = "hanging"

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.Event()
        self._released = threading.Event()

    def _open_device(self) -> None:
        self._released.clear()

    def _close_device(self) -> None:
        self._released.set()

    def _read_image(self) -> tuple[BgrImage | None, float]:
        self.reading.set()
        self._released.wait()
        raise CameraError("hanging: closed during read")


def test_a_hung_camera_read_stops_watchdog_pings(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path, tmp_path: Path
) -> None:
    """The camera is open and its read never returns: no frame, no capture beat, and the
    vision loop's empty waits are no progress either, so systemd's pings stop."""
    from agent.config import load_config
    from agent.runtime.capture_gate import GateState
    from agent.runtime.daemon import PROGRESS_DEADLINE_S, AgentDaemon
    from agent.runtime.progress_watchdog import ProgressWatchdog
    from agent.runtime.sd_notify import SystemdNotifier

    bundle = watchlist_for(site, shared_data, models_dir)
    notify = NotifyListener(tmp_path / "notify.sock")
    cfg = load_config(site.write_device_config(scene))
    clock = ManualTime()
    notifier = SystemdNotifier(str(notify.path))
    wd = ProgressWatchdog(notifier, 3600.0, clock=clock)
    camera = HangingCamera()
    daemon = AgentDaemon(cfg, notifier=notifier, watchdog=wd, source=camera)
    daemon.start()
    try:
        wait_for("the thread's first round", lambda: wd.rounds >= 1)
        assert daemon.watchlists.import_bundle(bundle.data).status == "stored"
        # Idle for longer than the deadline: nothing to process is no stall.
        clock.now += PROGRESS_DEADLINE_S + 1
        wait_for("idle beats on the new clock", lambda: not wd.stalled())
        assert wd.check()
        result = daemon.handle_control_document(activation(site, bundle))
        assert result == f"activated {DEPLOYMENT}", result
        wait_for("the camera read hung", camera.reading.is_set)
        pings_live = wd.pings
        clock.now += PROGRESS_DEADLINE_S + 1
        # Two turns of the vision loop after the clock moved: had an empty wait counted
        # as progress, vision would have beaten by now.
        steps = daemon.vision_steps
        wait_for("the vision loop turning", lambda: daemon.vision_steps >= steps + 2)
        assert daemon.gate.state is GateState.ACTIVE  # the deployment is live
        # Control beats on the new clock; capture and vision cannot.
        wait_for("capture and vision stalled", lambda: wd.stalled() == ["capture", "vision"])
        for _ in range(10):
            assert not wd.check()
        wait_for("the datagrams", lambda: notify.count("WATCHDOG=1") == wd.pings, 10)
        assert wd.pings == pings_live
        # The camera closes (a signed stop): nothing is required of capture any more.
        stop = site.issuer().stop(site.device_id, DEPLOYMENT, "officers left")
        assert daemon.handle_control_document(stop) == f"stopped {DEPLOYMENT}"
        wait_for("idle beats again", lambda: not wd.stalled())
        assert wd.check() and wd.pings == pings_live + 1
    finally:
        daemon.shutdown()
        notify.close()


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
    control = site.hub_link("control-only")
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
