"""``lfr-agent doctor`` on a healthy device and on broken ones.

The healthy device is real: keys made and enrolled through the enrolment code, the
pinned models, a replay camera over real photos and a real mosquitto with mTLS. Two
things this machine cannot provide are given explicitly and said so: a synchronised
clock (``ManualClock``; this container's kernel clock reports unsynchronised) and a
thermal sensor (a sysfs-shaped folder). ``systemctl`` cannot answer without systemd as
PID 1, so the unit check is tested with a stand-in script.
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
import time
from pathlib import Path

import pytest
from support.mosquitto_broker import MosquittoBroker, free_port
from support.operator_passphrase import PASSPHRASE, passphrase_file

from agent.cli.agent_main import main as agent_main
from agent.cli.hub_main import main as hub_main
from agent.config import AgentConfig, load_config
from agent.diagnostics.doctor_checks import (
    CheckResult,
    DoctorOptions,
    Status,
    check_unit,
    run_doctor,
)
from agent.hub.keys.operator_keys import HubKeyStore
from agent.runtime.update_lock import DeploymentLock, lock_path
from agent.trust.signed_document import key_id
from agent.trust.system_clock import ClockSync, ManualClock, kernel_sync_state

DEV = "cam-31"


def _thermal(root: Path, celsius: float) -> Path:
    zone = root / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text(f"{int(celsius * 1000)}\n")
    return root / "thermal"


def _options(tmp: Path, celsius: float = 45.0) -> DoctorOptions:
    return DoctorOptions(
        clock=ManualClock(time.time(), sync=ClockSync.SYNCHRONISED),
        broker_timeout_s=5.0,
        thermal_root=_thermal(tmp, celsius),
        systemd_dir=tmp / "not-systemd",
        service_user=getpass.getuser(),
    )


def _enrolled_device(
    root: Path, broker: MosquittoBroker, models_dir: Path, shared_data: Path
) -> Path:
    """Enrol a device against the broker's CA with the two programs; returns its config."""
    hub_dir, device = root / "hub", root / "device"
    HubKeyStore.init(hub_dir, "supervisor", passphrase=PASSPHRASE)
    device.mkdir()
    config = device / "agent.toml"
    config.write_text(
        f'[device]\nid = "lfr-demo-01"\n\n[paths]\nkeys_dir = "{device / "keys"}"\n'
        f'state_dir = "{device / "state"}"\nruntime_dir = "{device / "run"}"\n'
        f'models_dir = "{models_dir}"\n\n[camera]\nsource = "replay"\n'
        f'device = "{shared_data / "faces" / "deepface_id01"}"\n'
    )
    cfg = ["-c", str(config)]
    req, bundle = root / "req.json", root / "bundle.json"
    assert agent_main(["enrol", "request", "--id", DEV, "--out", str(req), *cfg]) == 0
    rc = hub_main(
        ["device", "approve", str(req), "--out", str(bundle), "--hub-dir", str(hub_dir),
         "--pki-dir", str(broker.pki_dir), "--broker-url",
         f"mqtts://{broker.host}:{broker.port}", "--db", str(root / "alerts.db"),
         "--passphrase-file", str(passphrase_file(root))]
    )  # fmt: skip
    assert rc == 0
    fp = key_id(HubKeyStore.open(hub_dir).root_public())
    assert agent_main(["enrol", "complete", str(bundle), "--root-fingerprint", fp, *cfg]) == 0
    (device / "state").mkdir(exist_ok=True)
    return config


@pytest.fixture
def healthy(
    tmp_path: Path, mqtt_broker: MosquittoBroker, models_dir: Path, shared_data: Path
) -> Path:
    return _enrolled_device(tmp_path, mqtt_broker, models_dir, shared_data)


def _by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def _rewrite(config: Path, pattern: str, repl: str) -> AgentConfig:
    text, n = re.subn(pattern, repl, config.read_text(), flags=re.M)
    assert n == 1
    config.write_text(text)
    return load_config(config)


@pytest.mark.system
def test_healthy_device_passes_every_check_that_can_pass_here(
    healthy: Path, tmp_path: Path
) -> None:
    results = _by_name(run_doctor(load_config(healthy), _options(tmp_path)))
    for name in ("camera", "models", "keys", "enrolment", "clock", "broker", "disk", "temperature"):
        assert results[name].status is Status.OK, results[name].line()
    assert results["service"].status is Status.WARN  # no systemd as PID 1 here
    assert results["update lock"].status is Status.INFO
    assert "free" in results["update lock"].detail
    assert all(r.ok for r in results.values())


@pytest.mark.system
def test_cli_prints_a_line_per_check_and_exits_by_the_worst(
    healthy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = agent_main(["doctor", "-c", str(healthy), "--json"])
    report = json.loads(capsys.readouterr().out)
    status = {c["check"]: c["status"] for c in report["checks"]}
    # The real clock of this machine decides the clock check; everything else is healthy.
    clock_ok = (
        kernel_sync_state() is ClockSync.SYNCHRONISED
        or Path("/run/systemd/timesync/synchronized").exists()
    )
    assert status["clock"] == ("ok" if clock_ok else "fail")
    failed = [name for name, s in status.items() if s == "fail"]
    assert failed == ([] if clock_ok else ["clock"])
    assert rc == (0 if clock_ok else 1) and report["ok"] is clock_ok


@pytest.mark.system
def test_broken_device_gets_each_failure_with_its_fix(
    healthy: Path, tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(healthy)
    # Tampered model: a private copy of the models with one byte flipped.
    bad_models = tmp_path / "bad-models"
    shutil.copytree(models_dir, bad_models)
    det = next(p for p in bad_models.glob("*.onnx") if "yunet" in p.name)
    data = bytearray(det.read_bytes())
    data[len(data) // 2] ^= 0xFF
    det.write_bytes(bytes(data))
    _rewrite(healthy, r"^models_dir = .*$", f'models_dir = "{bad_models}"')
    # A private key readable by others, the certificate gone, a camera that is not there,
    # a broker port where nothing listens.
    (cfg.paths.keys_dir / "device-x25519-key.pem").chmod(0o644)
    cfg.mqtt.cert_file.unlink()
    _rewrite(healthy, r"^device = .*$", f'device = "{tmp_path / "no-such-camera"}"')
    cfg = _rewrite(healthy, r"^port = .*$", f"port = {free_port()}")

    results = _by_name(run_doctor(cfg, _options(tmp_path, celsius=86.0)))
    expect = {
        "models": ("SHA-256", "models install"),
        "keys": ("device-x25519-key.pem mode 0644", "chmod 600"),
        "enrolment": ("device-cert.pem: missing", "enrol complete"),
        "broker": ("device-cert.pem: missing", "enrol complete"),
        "camera": ("no such file or folder", "camera.device"),
    }
    for name, (detail, hint) in expect.items():
        r = results[name]
        assert r.status is Status.FAIL, r.line()
        assert detail in r.detail and hint in r.hint, r.line()
    assert (
        results["temperature"].status is Status.WARN and "86.0 °C" in results["temperature"].detail
    )

    # The CLI says the same and exits 1.
    assert agent_main(["doctor", "-c", str(healthy), "--broker-timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert out.count("✗") >= 5 and "fix: chmod 600" in out


@pytest.mark.system
def test_unreachable_broker_is_a_failure(healthy: Path, tmp_path: Path) -> None:
    cfg = _rewrite(healthy, r"^port = .*$", f"port = {free_port()}")
    r = _by_name(run_doctor(cfg, _options(tmp_path)))["broker"]
    assert r.status is Status.FAIL and "refused" in r.detail.lower(), r.line()
    assert "check the network" in r.hint


@pytest.mark.system
def test_camera_is_left_alone_while_a_deployment_is_live(healthy: Path, tmp_path: Path) -> None:
    cfg = load_config(healthy)
    with DeploymentLock(lock_path(cfg.paths.runtime_dir)) as lock:
        lock.acquire("dep-9")
        results = _by_name(run_doctor(cfg, _options(tmp_path)))
    assert (
        results["camera"].status is Status.WARN and "deployment is live" in results["camera"].detail
    )
    assert "dep-9" in results["update lock"].detail


def test_disabled_unit_is_a_failure(tmp_path: Path) -> None:
    # systemctl needs systemd as PID 1, absent here: a stand-in answers like it would.
    fake = tmp_path / "systemctl"
    fake.write_text("#!/bin/sh\necho disabled\nexit 1\n")
    fake.chmod(0o755)
    (tmp_path / "systemd").mkdir()
    opts = DoctorOptions(systemd_dir=tmp_path / "systemd", systemctl=str(fake))
    r = check_unit(opts)
    assert r.status is Status.FAIL and "disabled" in r.detail and "systemctl enable" in r.hint


@pytest.mark.system
def test_the_broker_check_leaves_the_running_agents_session_alone(
    healthy: Path, tmp_path: Path, mqtt_broker: MosquittoBroker
) -> None:
    """The broker makes the certificate's name the client id: an MQTT connection by the
    doctor would take the running agent's session over. It only shakes hands."""
    import threading

    from agent.diagnostics.doctor_checks import check_broker
    from agent.hub.keys.pki import load_certificate, revoke_certificate
    from agent.transport.mqtt_link import MqttLink, MqttSettings

    cfg = load_config(healthy)
    mqtt_broker.grant(DEV)
    dropped = threading.Event()
    agent = MqttLink(MqttSettings.from_config(cfg.mqtt, client_id=DEV), on_disconnected=dropped.set)
    agent.start()
    try:
        assert agent.wait_connected(10)
        r = check_broker(cfg, 5.0)
        assert r.status is Status.OK and "handshake" in r.detail, r.line()
        time.sleep(1.0)
        assert not dropped.is_set(), "the doctor took the agent's session over"
    finally:
        agent.stop(graceful=False)
    # Withdrawn: its certificate on the broker's revocation list, re-read on reload.
    revoke_certificate(mqtt_broker.pki_dir, load_certificate(cfg.mqtt.cert_file))
    mqtt_broker.reload()
    r = check_broker(cfg, 5.0)
    assert r.status is Status.FAIL and "TLS refused" in r.detail, r.line()
