"""The daemon under faults: a full or failing outbox, a slow pipeline, a failing vision
step, SIGTERM while starting, a broker link that drops, a tampered model.

Real parts throughout: mosquitto with the shipped config, the models, the outbox on
disk, the hub receiver; the camera is a replay of a generated street scene.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runtime.daemon_world import (
    DEPLOYMENT,
    Hub,
    NotifyListener,
    activation,
    audit_entries,
    wait_for,
    watchlist_for,
)
from support.alert_factory import make_content
from support.tcp_cut_proxy import TcpCutProxy

from agent.camera.frame_source import Frame
from agent.config import AgentConfig, load_config
from agent.protocol.topics import status_topic
from agent.runtime.capture_gate import GateState
from agent.runtime.daemon import AgentDaemon
from agent.runtime.deployment_report import ReportArchive
from agent.transport.alert_outbox import OutboxFullError
from agent.vision.face_pipeline import FacePipeline, MatchCandidate
from hil.local_broker import MosquittoBroker
from hil.virtual_site import VirtualSite

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.fault]


def sealed_ids(site: VirtualSite, deployment: str = DEPLOYMENT) -> set[str]:
    return {
        str(e["alert_id"])
        for e in audit_entries(site, "alert.sealed")
        if e["deployment_id"] == deployment
    }


def fill_outbox(daemon: AgentDaemon) -> int:
    """Fill the outbox with real sealed alerts of another deployment until it refuses one,
    big ones first, then small ones, so that no face crop fits in what is left."""
    n = 0
    for size in (200_000, 300):
        while True:
            jpeg = b"\xff\xd8" + bytes(size) + b"\xff\xd9"
            try:
                daemon.publisher.submit(make_content(daemon.cfg.device.id, n, jpeg=jpeg))
            except OutboxFullError:
                break
            n += 1
    return n


def test_a_full_outbox_closes_the_camera_and_loses_no_alert(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path
) -> None:
    bundle = watchlist_for(site, shared_data, models_dir)
    cfg = load_config(
        site.write_device_config(scene, outbox="max_mb = 1\nresend_after_s = 2", loop=True)
    )
    daemon = AgentDaemon(cfg)
    fillers = fill_outbox(daemon)
    assert fillers > 4
    daemon.start()
    hub: Hub | None = None
    try:
        assert daemon.watchlists.import_bundle(bundle.data).status == "stored"
        result = daemon.handle_control_document(activation(site, bundle))
        assert result == f"activated {DEPLOYMENT}", result
        # The first alert does not fit: the camera closes and the deployment ends.
        wait_for("the camera closed", lambda: daemon.gate.state is GateState.IDLE, 120)
        wait_for("the deployment ended", lambda: daemon._deployment is None)
        assert daemon.gate.status().reason == "outbox-full"
        held = len(daemon._unsaved)
        assert held >= 1
        assert "alerts_not_stored" in daemon._alarms()
        status = daemon.health.report_now()
        assert status is not None and "alerts_not_stored" in status.alarms
        (ended,) = audit_entries(site, "deployment.ended")
        assert ended["reason"] == "outbox-full" and ended["alerts"] == held
        # Not a final reason: the watchlist is released from memory, not wiped.
        assert daemon.watchlists.bound_hash is None
        assert any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*"))
        # No capture while alerts still wait for the outbox.
        refused = daemon.handle_control_document(activation(site, bundle))
        assert refused.startswith("refused:"), refused
        assert daemon.gate.state is GateState.IDLE
        assert not sealed_ids(site)

        # The hub comes up and acknowledges: room frees, the held alerts are stored
        # (in order, with the ids they were sealed with) and delivered.
        hub = Hub.start(site)
        wait_for("the held alerts stored", lambda: not daemon._unsaved, 120)
        # The audit entry follows the store (an alert is on disk before it is audited).
        wait_for("the held alerts audited", lambda: len(sealed_ids(site)) >= held)
        sealed = sealed_ids(site)
        assert len(sealed) == held
        wait_for(
            "the held alerts at the hub", lambda: hub is not None and hub.stored_ids() == sealed
        )
        assert "alerts_not_stored" not in daemon._alarms()
        # Capture can resume now.
        result = daemon.handle_control_document(activation(site, bundle))
        assert result == f"activated {DEPLOYMENT}", result
    finally:
        daemon.shutdown()
        if hub is not None:
            hub.stop()
    assert not audit_entries(site, "alert.lost")
    reports = ReportArchive(site.state_dir, 86400).read(DEPLOYMENT)
    assert [r["end_reason"] for r in reports][:1] == ["outbox-full"]
    # One refusal audited per alert, however often it was retried.
    refusals = [e["alert_id"] for e in audit_entries(site, "outbox.full_refused")]
    assert len(refusals) == len(set(refusals))


def test_alerts_still_held_at_shutdown_are_each_audited_as_lost(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path
) -> None:
    """Memory does not survive the process: what the outbox never took is accounted for."""
    bundle = watchlist_for(site, shared_data, models_dir)
    cfg = load_config(site.write_device_config(scene, outbox="max_mb = 1", loop=True))
    daemon = AgentDaemon(cfg)
    fill_outbox(daemon)
    daemon.start()
    try:
        assert daemon.watchlists.import_bundle(bundle.data).status == "stored"
        assert daemon.handle_control_document(activation(site, bundle)).startswith("activated")
        wait_for("the deployment ended", lambda: daemon._deployment is None, 120)
        wait_for("the camera closed", lambda: daemon.gate.state is GateState.IDLE)
        held = len(daemon._unsaved)
        assert held >= 1
    finally:
        daemon.shutdown()  # no hub: nothing frees room in the outbox
    lost = audit_entries(site, "alert.lost")
    (ended,) = audit_entries(site, "deployment.ended")
    assert len(lost) == held == ended["alerts"]
    assert {e["deployment_id"] for e in lost} == {DEPLOYMENT}
    assert not sealed_ids(site)


def test_a_failing_outbox_disk_closes_the_camera_and_the_alert_waits(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path
) -> None:
    """The sequence file cannot be written (a directory stands in its place: a real
    filesystem error, not a mocked one): fail closed, hold the alert, store it later."""
    bundle = watchlist_for(site, shared_data, models_dir)
    cfg = load_config(site.write_device_config(scene, loop=True))
    daemon = AgentDaemon(cfg)
    sequence = daemon.outbox.folder / "sequence"
    sequence.unlink(missing_ok=True)
    sequence.mkdir()
    daemon.start()
    try:
        assert daemon.watchlists.import_bundle(bundle.data).status == "stored"
        assert daemon.handle_control_document(activation(site, bundle)).startswith("activated")
        wait_for("the camera closed", lambda: daemon.gate.state is GateState.IDLE, 120)
        wait_for("the deployment ended", lambda: daemon._deployment is None)
        assert daemon.gate.status().reason == "outbox-error"
        assert daemon._unsaved and not sealed_ids(site)
        sequence.rmdir()  # the disk recovers
        wait_for("the held alerts stored", lambda: not daemon._unsaved)
        # Each is audited just after it is stored: wait for the last entry, then compare.
        wait_for("the held alerts audited", lambda: len(sealed_ids(site)) >= len(daemon.outbox))
        assert sealed_ids(site) and len(daemon.outbox) == len(sealed_ids(site))
    finally:
        daemon.shutdown()
    assert not audit_entries(site, "alert.lost")


class SlowPipeline(FacePipeline):
    """The real pipeline on a slow machine: every frame costs 0.2 s more."""

    def process(self, frame: Frame) -> list[MatchCandidate]:
        time.sleep(0.2)
        return super().process(frame)


def test_back_pressure_drops_frames_never_alerts(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path
) -> None:
    bundle = watchlist_for(site, shared_data, models_dir)
    cfg = load_config(site.write_device_config(scene, fps=30, loop=True))
    daemon = AgentDaemon(cfg)
    daemon.pipeline.close()
    daemon.pipeline = SlowPipeline(cfg, daemon.models)
    hub = Hub.start(site)
    daemon.start()
    try:
        assert daemon.watchlists.import_bundle(bundle.data).status == "stored"
        assert daemon.handle_control_document(activation(site, bundle)).startswith("activated")
        wait_for("an alert at the hub", lambda: bool(hub.stored_ids()), 180)
        stop = site.issuer().stop(site.device_id, DEPLOYMENT, "officers left")
        assert daemon.handle_control_document(stop) == f"stopped {DEPLOYMENT}"
        # An alert decided just before the stop may still be on its way to the audit log.
        wait_for("every sealed alert at the hub", lambda: hub.stored_ids() == sealed_ids(site))
        wait_for("the outbox empty", lambda: len(daemon.outbox) == 0)
        sealed = sealed_ids(site)
        assert hub.stored_ids() == sealed
    finally:
        daemon.shutdown()
        hub.stop()
    (report,) = ReportArchive(site.state_dir, 86400).read(DEPLOYMENT)
    print(f"\nslow pipeline: frames {report['frames']}, dropped {report['frames_dropped']}")
    assert report["frames_dropped"] > 0
    assert report["alerts"] == len(sealed) >= 1
    assert not audit_entries(site, "alert.lost")


def test_a_failing_vision_step_closes_the_camera_and_the_thread_lives_on(
    site: VirtualSite,
    scene: Path,
    shared_data: Path,
    models_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bundle = watchlist_for(site, shared_data, models_dir)
    cfg = load_config(site.write_device_config(scene, loop=True))
    daemon = AgentDaemon(cfg)
    real_process = daemon.pipeline.process
    calls = []

    def broken(frame: Frame) -> list[MatchCandidate]:
        calls.append(frame.seq)
        raise ValueError("embedding 0.1234 0.5678 does not fit")  # would-be face data

    daemon.pipeline.process = broken  # type: ignore[method-assign]
    caplog.set_level(logging.INFO)
    daemon.start()
    try:
        assert daemon.watchlists.import_bundle(bundle.data).status == "stored"
        assert daemon.handle_control_document(activation(site, bundle)).startswith("activated")
        wait_for("the camera closed", lambda: daemon.gate.state is GateState.IDLE, 60)
        wait_for("the deployment ended", lambda: daemon._deployment is None)
        assert daemon.gate.status().reason == "internal-error"
        vision = [t for t in daemon._threads if t.name == "vision"]
        assert vision and vision[0].is_alive()
        # The same thread serves the next deployment.
        daemon.pipeline.process = real_process  # type: ignore[method-assign]
        assert daemon.handle_control_document(activation(site, bundle)).startswith("activated")
        wait_for("frames processed again", lambda: daemon.pipeline.counters.frames > 0, 60)
        assert daemon.gate.state is GateState.ACTIVE
    finally:
        daemon.shutdown()
    failures = [r for r in caplog.records if "vision step failed" in r.getMessage()]
    assert len(failures) == 1 and calls
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "ValueError" in failures[0].getMessage() and "0.1234" not in text
    assert failures[0].exc_info is None  # no traceback with values in it
    (first, _) = [e["reason"] for e in audit_entries(site, "deployment.ended")]
    assert first == "internal-error"


def test_sigterm_while_waiting_for_the_broker_stops_cleanly(
    site: VirtualSite, scene: Path, mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    site.write_device_config(scene)
    mqtt_broker.stop()  # the broker is unreachable: start() waits for it
    notify = NotifyListener(tmp_path / "notify.sock")
    agent = site.start_device({"NOTIFY_SOCKET": str(notify.path)})
    audit = site.state_dir / "audit.jsonl"
    try:
        wait_for(
            "the agent starting",
            lambda: audit.exists() and "agent.started" in audit.read_text(),
            120,
        )
        agent.proc.send_signal(signal.SIGTERM)
        code = agent.proc.wait(60)
    finally:
        agent.stop()
        notify.close()
    assert code == 0, agent.log_text()[-3000:]
    # Stopped during the broker wait: never announced READY, announced STOPPING.
    assert notify.seen("STOPPING=1") and not notify.seen("READY=1"), notify.lines()
    assert "stop requested while starting" in agent.log_text()
    assert "agent.stopped" in audit.read_text()


def test_status_is_online_again_as_soon_as_the_link_is_back(
    site: VirtualSite, scene: Path, mqtt_broker: MosquittoBroker
) -> None:
    """The broker's last will leaves ``offline`` retained during an outage; the first
    status after the reconnect replaces it, not the next periodic one (an hour away)."""
    proxy = TcpCutProxy(mqtt_broker.port)
    text = site.write_device_config(scene).read_text()
    text = text.replace(f"port = {mqtt_broker.port}", f"port = {proxy.port}")
    text = text.replace("status_interval_s = 2.0", "status_interval_s = 3600.0")
    site.config_path.write_text(text)
    cfg: AgentConfig = load_config(site.config_path)
    statuses: list[bytes] = []
    watcher = site.hub_link("status-watch")
    watcher.subscribe(status_topic(site.device_id), lambda _t, p: statuses.append(p))
    watcher.start()
    assert watcher.wait_connected(10)
    daemon = AgentDaemon(cfg)
    daemon.start()
    try:
        wait_for("the first status", lambda: any(p.startswith(b"{") for p in statuses), 30)
        proxy.cut()  # the broker sees the device vanish and publishes its will
        wait_for("offline published", lambda: bool(statuses) and statuses[-1] == b"offline", 60)
        proxy.restore()
        wait_for("the link back", lambda: daemon.link.connected, 60)
        wait_for("status online again", lambda: statuses[-1].startswith(b"{"), 60)
    finally:
        daemon.shutdown()
        watcher.stop()
        proxy.close()


def test_a_tampered_model_refuses_to_start_with_one_line(
    site: VirtualSite, scene: Path, models_dir: Path, tmp_path: Path
) -> None:
    tampered = tmp_path / "models"
    shutil.copytree(models_dir, tampered)
    victim = next(p for p in sorted(tampered.glob("*.onnx")) if "yunet" in p.name)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    text = site.write_device_config(scene).read_text()
    site.config_path.write_text(text.replace(str(models_dir), str(tampered)))
    res = subprocess.run(
        [sys.executable, "-m", "agent.cli.agent_main", "run", "--config", str(site.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1, res.stderr
    assert len(lines) == 1 and victim.name in lines[0], res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    # Nothing was started: no camera, no deployment, no broker session.
    assert (
        not (site.state_dir / "audit.jsonl").exists()
        or "agent.started" not in (site.state_dir / "audit.jsonl").read_text()
    )
