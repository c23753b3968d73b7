"""Enrolment end to end: request on the device → approval at the hub → complete on the device,
through both command-line programs, with real keys, certificates and files."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID
from enrolment_world import Site, make_site
from support.operator_passphrase import passphrase_file

from agent.cli.agent_main import main as agent_main
from agent.cli.hub_main import main as hub_main
from agent.config import load_config
from agent.hub.store.alert_store import AlertStore
from agent.trust.device_keys import (
    EXCHANGE_KEY_FILE,
    EXCHANGE_PUB_FILE,
    INCOMPLETE_MARKER,
    SIGNING_KEY_FILE,
    SIGNING_PUB_FILE,
    load_device_keys,
    load_device_signing_public,
)
from agent.trust.hub_trust_store import HubTrustStore
from agent.trust.key_files import load_public_key
from agent.trust.signed_document import b64e, canonical_json

DEV = "cam-07"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path, DEV)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_round_trip_installs_a_consistent_device(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    request = site.request()
    out = capsys.readouterr().out
    assert "device keys   created" in out and "TLS key       created" in out
    assert b"PRIVATE" not in request.read_bytes()  # only public material leaves the device

    bundle = site.approve(request)
    hub_out = capsys.readouterr().out
    req_fp = out.split("fingerprint")[1].split("\n")[0].strip()
    assert req_fp in hub_out  # both sides print the same request fingerprint
    assert site.complete(bundle, "--root-fingerprint", site.root_fingerprint[:16]) == 0
    assert "device.id: 'lfr-demo-01' → 'cam-07'" in capsys.readouterr().out

    cfg = load_config(site.config)
    assert cfg.device.id == DEV
    assert (cfg.mqtt.host, cfg.mqtt.port) == ("127.0.0.1", 8883)
    assert cfg.paths.keys_dir == site.keys_dir
    # Modes: private 0600, public 0644, folder 0700.
    assert _mode(site.keys_dir) == 0o700
    for name in (SIGNING_KEY_FILE, EXCHANGE_KEY_FILE, "device-tls-key.pem"):
        assert _mode(site.keys_dir / name) == 0o600
    for name in ("device-cert.pem", "broker-ca.pem", "hub-root-pub.pem"):
        assert _mode(site.keys_dir / name) == 0o644

    # The device's trust store loads and knows the hub alert key.
    trust = HubTrustStore.load(site.keys_dir)
    assert trust.alert_key(trust.certificates[0].issued_at + 1) is not None
    # Its TLS certificate chains to the broker CA with CN = device id.
    cert = x509.load_pem_x509_certificate(cfg.mqtt.cert_file.read_bytes())
    ca = x509.load_pem_x509_certificate((site.pki_dir / "ca.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DEV
    # The hub registry holds the device's public keys, the alert database its signing key.
    keys = load_device_keys(site.keys_dir)
    reg = site.hub_dir / "devices" / DEV
    assert load_public_key(reg / SIGNING_PUB_FILE, Ed25519PublicKey) == keys.signing_public  # type: ignore[type-abstract]
    assert (reg / EXCHANGE_PUB_FILE).read_bytes() == (
        site.keys_dir / EXCHANGE_PUB_FILE
    ).read_bytes()
    store = AlertStore(site.db)
    assert store.device_key(DEV) == keys.signing_public
    store.close()

    assert agent_main(["enrol", "status", *site.cfg()]) == 0
    assert hub_main(["device", "list", "--hub-dir", str(site.hub_dir)]) == 0
    assert DEV in capsys.readouterr().out


def test_request_never_overwrites_existing_keys(site: Site) -> None:
    site.request()
    before = {p.name: p.read_bytes() for p in site.keys_dir.glob("device-*.pem")}
    site.request(site.root / "again.json")
    after = {p.name: p.read_bytes() for p in site.keys_dir.glob("device-*.pem")}
    assert before == after and len(after) == 5
    # One key of the pair missing: refuse, do not invent a new pair.
    (site.keys_dir / EXCHANGE_KEY_FILE).unlink()
    rc = agent_main(
        ["enrol", "request", "--id", DEV, "--out", str(site.root / "x.json"), *site.cfg()]
    )
    assert rc == 2
    assert not (site.keys_dir / EXCHANGE_KEY_FILE).exists()
    assert (site.keys_dir / SIGNING_KEY_FILE).read_bytes() == before[SIGNING_KEY_FILE]


def test_a_request_after_a_cut_during_key_generation_makes_a_whole_set(site: Site) -> None:
    # Power-cut crash point "enrolment public key after rename": the generation marker
    # and the signing key made it to disk, nothing else did. Nothing has used that key.
    site.keys_dir.mkdir(parents=True, exist_ok=True)
    (site.keys_dir / INCOMPLETE_MARKER).write_bytes(b"device key generation in progress\n")
    (site.keys_dir / SIGNING_KEY_FILE).write_bytes(b"")  # the unsynced key lost its data
    request = site.request()
    keys = load_device_keys(site.keys_dir)
    assert not (site.keys_dir / INCOMPLETE_MARKER).exists()
    bundle = site.approve(request)
    assert site.complete(bundle, "--root-fingerprint", site.root_fingerprint) == 0
    assert load_device_signing_public(site.keys_dir) == keys.signing_public


def test_wrong_fingerprint_installs_nothing(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = site.approve(site.request())
    wrong = "0" * 64 if not site.root_fingerprint.startswith("0" * 16) else "f" * 64
    assert site.complete(bundle, "--root-fingerprint", wrong) == 1
    assert "do not install this bundle" in capsys.readouterr().err
    assert not (site.keys_dir / "device-cert.pem").exists()
    assert load_config(site.config).device.id == "lfr-demo-01"
    # Without a fingerprint and without a terminal: refused with a clear request for one.
    assert site.complete(bundle) == 2
    assert "--root-fingerprint" in capsys.readouterr().err


def _edit_body(bundle: Path, change: dict[str, object]) -> None:
    env = json.loads(bundle.read_bytes())
    body = json.loads(base64.b64decode(env["payload"]))
    body.update(change)
    env["payload"] = b64e(canonical_json(body))
    bundle.write_bytes(canonical_json(env))


def test_tampered_bundle_is_refused(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = site.approve(site.request())
    good = bundle.read_bytes()
    _edit_body(bundle, {"broker_url": "mqtts://evil.example:8883"})
    assert site.complete(bundle, "--root-fingerprint", site.root_fingerprint) == 1
    assert "signature: does not verify" in capsys.readouterr().err
    # A substituted root key shows up as a fingerprint mismatch before anything else.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    bundle.write_bytes(good)
    env = json.loads(good)
    body = json.loads(base64.b64decode(env["payload"]))
    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    body["hub_files"]["hub-root-pub.pem"] = b64e(other)
    env["payload"] = b64e(canonical_json(body))
    bundle.write_bytes(canonical_json(env))
    assert site.complete(bundle, "--root-fingerprint", site.root_fingerprint) == 1
    assert "not the confirmed" in capsys.readouterr().err
    # Not JSON at all: one line, exit 1.
    bundle.write_bytes(b"\x00garbage")
    assert site.complete(bundle, "--yes") == 1
    assert "bundle: document: not JSON" in capsys.readouterr().err
    assert not (site.keys_dir / "device-cert.pem").exists()


def test_bundle_made_for_another_device_is_refused(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.request()
    other = make_site(tmp_path / "other", DEV)
    # Same hub, but the request came from a different board (other keys).
    shutil.rmtree(other.hub_dir)
    shutil.copytree(site.hub_dir, other.hub_dir)
    other.pki_dir = site.pki_dir
    foreign = other.approve(other.request(), "--replace")
    assert site.complete(foreign, "--root-fingerprint", site.root_fingerprint) == 1
    assert "made for another device's keys" in capsys.readouterr().err


def test_reenrolment_keeps_the_pinned_root_and_needs_replace_for_new_keys(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.enrol()
    # Re-approval of the same device (same keys) installs without a fingerprint: the
    # root it already trusts is the pin.
    assert site.complete(site.approve(site.root / "request.json")) == 0
    # A bundle from another hub is refused even with --yes.
    rogue = make_site(tmp_path / "rogue", DEV)
    rogue.keys_dir = site.keys_dir
    rogue.config = site.config
    rogue_bundle = rogue.approve(site.root / "request.json")
    capsys.readouterr()
    assert site.complete(rogue_bundle, "--yes") == 1
    assert "different hub root" in capsys.readouterr().err
    # A re-flashed board (new keys) under the same id needs --replace at the hub.
    fresh = make_site(tmp_path / "fresh", DEV)
    req = fresh.request()
    rc = hub_main(
        [
            "device",
            "approve",
            str(req),
            "--out",
            str(tmp_path / "b.json"),
            "--hub-dir",
            str(site.hub_dir),
            "--pki-dir",
            str(site.pki_dir),
            "--broker-url",
            site.broker_url,
            "--db",
            str(site.db),
            "--passphrase-file",
            str(passphrase_file(site.root)),
        ]
    )
    assert rc == 2
    assert "already enrolled with other keys" in capsys.readouterr().err


def test_config_with_another_device_id_needs_force(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = site.approve(site.request())
    text = site.config.read_text().replace("lfr-demo-01", "cam-99")
    site.config.write_text(text + '\n[camera]\nsource = "replay"\ndevice = "/srv/clip"\n')
    assert site.complete(bundle, "--root-fingerprint", site.root_fingerprint) == 2
    assert "rerun with --force" in capsys.readouterr().err
    assert site.complete(bundle, "--root-fingerprint", site.root_fingerprint, "--force") == 0
    cfg = load_config(site.config)
    assert cfg.device.id == DEV
    assert str(cfg.camera.device) == "/srv/clip"  # other settings are kept


@pytest.mark.slow
def test_a_watchlist_can_be_built_for_the_enrolled_device(
    tmp_path: Path, models_dir: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path, DEV, extra_config=f'models_dir = "{models_dir}"\n')
    site.enrol()
    photos = tmp_path / "photos" / "deepface_id01"
    photos.mkdir(parents=True)
    shutil.copy(shared_data / "faces" / "deepface_id01" / "1.jpg", photos / "1.jpg")
    out = tmp_path / "dep.lfrwl"
    rc = hub_main(
        [
            "watchlist",
            "build",
            "--images",
            str(photos.parent),
            "--device",
            DEV,
            "--deployment",
            "dep-1",
            "--out",
            str(out),
            "--hub-dir",
            str(site.hub_dir),
            "--models-dir",
            str(models_dir),
        ]
    )
    assert rc == 0
    assert agent_main(["watchlist", "import", str(out), *site.cfg()]) == 0
    assert "stored" in capsys.readouterr().out


@pytest.mark.system
def test_enrolled_device_connects_and_the_acl_confines_it(
    tmp_path: Path, mqtt_broker: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from support.mosquitto_broker import MosquittoBroker

    from agent.runtime.health_status import HealthStatus
    from agent.transport.mqtt_link import MqttLink, MqttSettings, PublishResult

    assert isinstance(mqtt_broker, MosquittoBroker)
    site = make_site(
        tmp_path,
        DEV,
        pki_dir=mqtt_broker.pki_dir,
        broker_url=f"mqtts://{mqtt_broker.host}:{mqtt_broker.port}",
    )
    site.enrol()
    cfg = load_config(site.config)
    broker_addr = ["--broker", f"{mqtt_broker.host}:{mqtt_broker.port}"]
    pki = ["--pki-dir", str(mqtt_broker.pki_dir)]
    mqtt_broker.admin_settings()  # issues the administrator certificate `pki init` makes
    # Enrolled but not yet granted: the certificate connects, the broker allows nothing.
    link = MqttLink(MqttSettings.from_config(cfg.mqtt, client_id=DEV))
    refused: list[PublishResult] = []
    link.start()
    try:
        assert link.wait_connected(10)
        link.publish(f"lfr/v1/{DEV}/status", b"{}", on_result=refused.append)
        deadline = time.monotonic() + 10
        while not refused and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        link.stop(graceful=False)
    assert refused and refused[0].reason_code == 135
    assert hub_main(["broker", "grant", "--device", DEV, *broker_addr, *pki]) == 0
    link = MqttLink(MqttSettings.from_config(cfg.mqtt, client_id=DEV))
    results: dict[str, PublishResult] = {}
    got = threading.Event()

    def record(name: str) -> object:
        def cb(r: PublishResult) -> None:
            results[name] = r
            if len(results) == 2:
                got.set()

        return cb

    link.start()
    try:
        assert link.wait_connected(10)
        link.publish(f"lfr/v1/{DEV}/status", b"{}", on_result=record("own"))  # type: ignore[arg-type]
        link.publish("lfr/v1/cam-08/status", b"{}", on_result=record("other"))  # type: ignore[arg-type]
        assert got.wait(10)
    finally:
        link.stop(graceful=False)
    assert results["own"].ok
    assert not results["other"].ok and results["other"].reason_code == 135
    # The hub sees it online: the device's retained status, read with the hub identity.
    link = MqttLink(MqttSettings.from_config(cfg.mqtt, client_id=DEV))
    link.start()
    try:
        assert link.wait_connected(10)
        done = threading.Event()
        link.publish(
            f"lfr/v1/{DEV}/status",
            HealthStatus(
                device_id=DEV,
                state="idle",
                version="0.1.0",
                time="2026-11-22T06:46:40+00:00",
                uptime_s=1.0,
                models={},
                fps=0.0,
                dropped_frames=0,
                outbox_depth=0,
                disk_free_bytes=None,
                disk_free_fraction=None,
                cpu_temp_c=None,
                clock_sync="unknown",
            ).to_json(),
            retain=True,
            on_result=lambda r: done.set(),
        )
        assert done.wait(10)
    finally:
        link.stop(graceful=False)
    mqtt_broker.client_files("hub.monitor", grant=False)  # `lfr-hub pki issue --hub monitor`
    assert (
        hub_main(["broker", "grant", "--hub", "monitor", "--role", "monitor", *broker_addr, *pki])
        == 0
    )
    rc = hub_main(
        [
            *("device", "list", "--hub-dir", str(site.hub_dir), "--online", "--wait", "1"),
            *broker_addr,
            *pki,
        ]
    )
    assert rc == 0
    assert "online (idle)" in capsys.readouterr().out
