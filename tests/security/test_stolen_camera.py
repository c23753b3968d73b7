"""A stolen camera against the shipped broker config and the hub.

The attacker holds one camera's broker certificate and key and its signing key
(``cam-b``, taken off its pole) and tries each attack of issue 16 against a real
mosquitto running ``configs/mosquitto/lfr.conf`` (``hil/local_broker.py``), real
certificates from the PKI code, and the hub's real receivers. Each test shows the attack
refused and nothing lost: the stop reaches cam-a, every alert reaches the hub worker,
cam-a's alert is stored, the operator's terminal shows escaped text.

docs/security.md ("Stolen camera") lists each attack with what stops it and its test.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from provisioning.enrolment_world import make_site
from runtime.daemon_world import DEPLOYMENT, wait_for, watchlist_for
from support.alert_factory import FAKE_JPEG, AlertKeys, make_content
from support.attacker_client import AttackerClient
from support.mosquitto_broker import HUB_CN, MosquittoBroker

from agent.cli.agent_main import main as agent_main
from agent.cli.hub_main import main as hub_main
from agent.config import load_config
from agent.diagnostics.doctor_checks import Status, check_broker
from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker, Receipt
from agent.hub.intake.report_receiver import ReportReceiver
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.store.alert_store import AlertStore, StoreResult
from agent.hub.store.report_store import DeploymentReportStore
from agent.protocol.deployment_report import REPORT_TYPE
from agent.protocol.report_ack import decode_report_ack
from agent.protocol.topics import (
    ALL_EVENTS,
    ack_topic,
    activation_topic,
    alert_topic,
    event_topic,
    report_ack_topic,
    watchlist_topic,
)
from agent.runtime.deployment_report import DeploymentReport, ReportArchive, sign_report
from agent.transport.alert_outbox import AlertOutbox
from agent.transport.alert_publisher import AlertPublisher
from agent.transport.mqtt_link import MqttLink, MqttSettings, PublishResult
from agent.trust.alert_envelope import (
    ALERT_INFO,
    ALERT_PAYLOAD_TYPE,
    AlertHeader,
    OpenedAlert,
    seal_alert,
)
from agent.trust.device_keys import generate_device_keys, load_device_keys
from agent.trust.sealed_box import seal
from agent.trust.signed_document import canonical_json, key_id, sign_document
from hil.virtual_site import VirtualSite

pytestmark = pytest.mark.system

CAM_A, CAM_B = "cam-a", "cam-b"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.messages.append((topic, payload))

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.messages) >= n


def published(link: MqttLink, topic: str, payload: bytes, timeout: float = 10.0) -> PublishResult:
    done = threading.Event()
    results: list[PublishResult] = []

    def got(r: PublishResult) -> None:
        results.append(r)
        done.set()

    link.publish(topic, payload, on_result=got)
    assert done.wait(timeout), "no PUBACK"
    return results[0]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def attacker(broker: MosquittoBroker, client_id: str, **options: object) -> AttackerClient:
    """A client with cam-b's stolen certificate asking for ``client_id``."""
    return AttackerClient(
        broker.host,
        broker.port,
        broker.client_files(CAM_B),
        client_id,
        **options,  # type: ignore[arg-type]
    )


# -- finding 1: session takeover --------------------------------------------------------------


def test_a_stolen_certificate_cannot_take_over_another_cameras_session(
    mqtt_broker: MosquittoBroker,
) -> None:
    """``mosquitto_sub --cert cam-b … -i cam-a`` used to kick cam-a off and, with a clean
    start, drop its session: a stop published meanwhile never reached cam-a. The broker
    now makes the certificate's name the client id, so the attacker is only ever cam-b."""
    dropped = threading.Event()
    stops = Inbox()
    cam_a = MqttLink(mqtt_broker.client_settings(CAM_A), on_disconnected=dropped.set)
    cam_a.subscribe(activation_topic(CAM_A), stops)
    hub = MqttLink(mqtt_broker.client_settings(HUB_CN, "hub-main-publish"))
    cam_a.start()
    hub.start()
    thief = attacker(mqtt_broker, CAM_A, clean_start=True)
    try:
        assert cam_a.wait_connected(10) and hub.wait_connected(10)
        assert thief.connect()
        assert thief.subscribe("lfr/v1/cam-b/x") >= 0
        time.sleep(0.5)  # what the broker does with the takeover, it has done by now
        assert published(hub, activation_topic(CAM_A), b"signed stop").ok
        thief.close()
        assert stops.wait_for(1), "the stop never reached cam-a"
        assert stops.messages == [(activation_topic(CAM_A), b"signed stop")]
        assert not dropped.is_set(), "cam-a was disconnected by the attacker"
    finally:
        thief.close()
        hub.stop()
        cam_a.stop()


def test_a_stolen_certificate_cannot_drop_the_hub_workers_queued_reports(
    mqtt_broker: MosquittoBroker,
) -> None:
    """The hub worker's client id was predictable (``hub-main-1``): taking it with a clean
    start dropped the reports the broker queued for it while it was away."""
    inbox = Inbox()
    worker = MqttLink(mqtt_broker.client_settings(HUB_CN, "hub-main-1"))
    worker.subscribe(ALL_EVENTS, inbox)
    worker.start()
    assert worker.wait_connected(10)
    worker.stop(graceful=False)  # its persistent session waits at the broker
    cam_a = MqttLink(mqtt_broker.client_settings(CAM_A))
    cam_a.start()
    thief = attacker(mqtt_broker, "hub-main-1", clean_start=True)
    again = MqttLink(mqtt_broker.client_settings(HUB_CN, "hub-main-1"))
    again.subscribe(ALL_EVENTS, inbox)
    try:
        assert cam_a.wait_connected(10)
        assert published(cam_a, event_topic(CAM_A), b"signed report").ok
        assert thief.connect()
        thief.close()
        again.start()
        assert inbox.wait_for(1), "the report queued for the hub worker was lost"
        assert inbox.messages == [(event_topic(CAM_A), b"signed report")]
    finally:
        thief.close()
        again.stop()
        cam_a.stop()


# -- finding 2: joining the hub's shared subscription ---------------------------------------


def test_a_camera_cannot_join_the_hubs_shared_subscription(mqtt_broker: MosquittoBroker) -> None:
    """A camera that joined ``$share/hub/lfr/v1/+/alert`` took its share of every camera's
    alerts, which the broker then dropped at its read check (5 of 20 in the report). The
    broker now refuses the subscription itself."""
    inbox = Inbox()
    worker = MqttLink(mqtt_broker.client_settings(HUB_CN, "hub-main-1"))
    worker.subscribe("$share/hub/lfr/v1/+/alert", inbox)
    worker.start()
    thieves = [attacker(mqtt_broker, f"cam-b-{i}") for i in range(3)]
    cam_a = MqttLink(mqtt_broker.client_settings(CAM_A))
    cam_a.start()
    try:
        assert worker.wait_connected(10) and cam_a.wait_connected(10)
        codes = []
        for thief in thieves:
            assert thief.connect()
            codes.append(thief.subscribe("$share/hub/lfr/v1/+/alert"))
        assert all(code >= 0x80 for code in codes), f"subscriptions granted: {codes}"
        for i in range(20):
            assert published(cam_a, alert_topic(CAM_A), b"alert %d" % i).ok
        assert inbox.wait_for(20), f"the hub worker got {len(inbox.messages)} of 20 alerts"
        assert sorted(p for _, p in inbox.messages) == sorted(b"alert %d" % i for i in range(20))
        assert all(not t.messages for t in thieves)
    finally:
        for thief in thieves:
            thief.close()
        cam_a.stop()
        worker.stop()


# -- finding 7: broker memory ------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@pytest.mark.fault
def test_a_camera_cannot_fill_the_broker_and_loses_nobody_an_alert(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    """While the hub worker is away, cam-b floods its alert topic with 1 MiB messages, more
    than the per-client queue limit. The broker keeps at most that much for the hub
    worker and drops the rest (the report: 100,000 messages of up to 9 MiB each, queued
    without a byte limit). cam-a's alert, dropped with the flood while the queue is
    full, still reaches the hub: the camera publishes it again until it is acknowledged."""
    limit = int(mqtt_broker.setting("max_queued_bytes") or "0")
    assert 0 < limit <= 256 * 2**20, "no per-client queue limit in the shipped config"
    keys = AlertKeys.generate()
    store = AlertStore(tmp_path / "hub.db")
    store.register_device_key(CAM_A, keys.device.public_key())
    stored: list[str] = []
    flood_bytes: list[int] = []  # what reaches the hub of cam-b's flood

    class CountingReceiver(AlertReceiver):
        def receive(self, topic: str, payload: bytes) -> Receipt:
            if topic == alert_topic(CAM_B):
                flood_bytes.append(len(payload))
            return super().receive(topic, payload)

    worker = HubAlertWorker(
        MqttLink(mqtt_broker.client_settings(HUB_CN, "hub-main-1")),
        CountingReceiver(store, keys.hub),
        on_receipt=lambda r: stored.extend([r.alert.header.alert_id] if r.alert else []),
    )
    worker.start()
    assert worker.link.wait_connected(10)
    worker.stop()  # away; its session (and its queue) stay at the broker
    thief = attacker(mqtt_broker, CAM_B, clean_start=False, session_expiry_s=3600)
    box = AlertOutbox(
        tmp_path / "outbox",
        max_bytes=10_000_000,
        alarm_fraction=0.9,
        retention_s=86400,
        audit=lambda e, f: None,
    )
    cam_a = MqttLink(mqtt_broker.client_settings(CAM_A))
    pub = AlertPublisher(
        box,
        cam_a,
        device_id=CAM_A,
        device_key=keys.device,
        hub_key=keys.hub.public_key(),
        resend_after_s=1.0,
    )
    pid = mqtt_broker.pid
    assert pid is not None
    rss_before = _rss_kib(pid)
    chunk = 2**20
    sent = limit // chunk + 64
    t0 = time.monotonic()
    try:
        assert thief.connect()
        for i in range(sent):
            assert thief.publish(alert_topic(CAM_B), bytes([i % 256]) * chunk) == 0
        alert_id = pub.submit(make_content(CAM_A, 1)).header.alert_id
        cam_a.start()
        pub.start()
        assert cam_a.wait_connected(10)
        assert wait_until(lambda: pub.published >= 1, 10)
        rss_after = _rss_kib(pid)
        worker.start()
        assert wait_until(lambda: alert_id in stored, 120), "cam-a's alert lost"
        assert wait_until(lambda: len(box) == 0, 30), "cam-a's alert never acknowledged"
        queued = sum(flood_bytes)
        print(
            f"\nflood {sent} MiB from cam-b in {time.monotonic() - t0:.1f} s; reached the hub "
            f"{queued / 2**20:.0f} MiB (limit {limit / 2**20:.0f} MiB); broker RSS "
            f"{rss_before / 1024:.0f} → {rss_after / 1024:.0f} MiB"
        )
        # The queue holds at most the limit; messages in flight (max_inflight_messages) come
        # on top of it.
        inflight = int(mqtt_broker.setting("max_inflight_messages"))
        assert queued <= limit + inflight * chunk, f"{queued} bytes queued for the hub"
    finally:
        thief.close()
        pub.stop()
        cam_a.stop()
        worker.stop()
        store.close()


def test_a_camera_cannot_send_a_packet_larger_than_the_largest_legitimate_message(
    mqtt_broker: MosquittoBroker,
) -> None:
    """The packet limit fits the largest legitimate message (a watchlist bundle of the
    camera's default limit, 8 MiB) and nothing bigger: a larger packet disconnects the
    sender and is delivered to nobody."""
    limit = int(mqtt_broker.setting("max_packet_size"))
    assert 8 * 2**20 < limit <= 10 * 2**20
    inbox = Inbox()
    hub = MqttLink(mqtt_broker.client_settings(HUB_CN, "hub-main-1"))
    hub.subscribe("lfr/v1/+/alert", inbox)
    hub.start()
    cam_a = MqttLink(mqtt_broker.client_settings(CAM_A))
    cam_a.subscribe(watchlist_topic(CAM_A), inbox)
    cam_a.start()
    thief = attacker(mqtt_broker, CAM_B)
    try:
        assert hub.wait_connected(10) and cam_a.wait_connected(10)
        assert published(hub, watchlist_topic(CAM_A), b"w" * (8 * 2**20), timeout=30).ok
        assert inbox.wait_for(1, 30)
        assert thief.connect()
        thief.client.publish(alert_topic(CAM_B), b"x" * limit, qos=1)
        assert thief.disconnected.wait(30), "the oversized packet was accepted"
        assert published(cam_a, alert_topic(CAM_A), b"after").ok
        assert inbox.wait_for(2)
        assert [t for t, _ in inbox.messages] == [watchlist_topic(CAM_A), alert_topic(CAM_A)]
    finally:
        thief.close()
        cam_a.stop()
        hub.stop()


# -- finding 3: alert id squatting -------------------------------------------------------------


@contextmanager
def hub_with_cameras(
    broker: MosquittoBroker, tmp_path: Path, keys: dict[str, AlertKeys]
) -> Iterator[tuple[AlertStore, list[Receipt], dict[str, MqttLink], dict[str, Inbox]]]:
    """A hub worker that stores and acks, and one camera link (with its ack inbox) per key."""
    store = AlertStore(tmp_path / "hub.db")
    hub_key = next(iter(keys.values())).hub
    for device, k in keys.items():
        store.register_device_key(device, k.device.public_key())
    receipts: list[Receipt] = []
    worker = HubAlertWorker(
        MqttLink(broker.client_settings(HUB_CN)),
        AlertReceiver(store, hub_key),
        on_receipt=receipts.append,
    )
    links, acks = {}, {}
    for device in keys:
        acks[device] = Inbox()
        links[device] = MqttLink(broker.client_settings(device))
        links[device].subscribe(ack_topic(device), acks[device])
    worker.start()
    for link in links.values():
        link.start()
    try:
        assert worker.link.wait_connected(10)
        assert all(link.wait_connected(10) for link in links.values())
        yield store, receipts, links, acks
    finally:
        for link in links.values():
            link.stop()
        worker.stop()
        store.close()


def test_a_camera_cannot_squat_another_cameras_alert_id(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    """Alert ids travel in clear: cam-b sends an alert of its own carrying the id of cam-a's
    next alert. cam-a's genuine alert must still be stored and acknowledged."""
    hub = X25519PrivateKey.generate()
    keys = {
        CAM_A: AlertKeys(Ed25519PrivateKey.generate(), hub),
        CAM_B: AlertKeys(Ed25519PrivateKey.generate(), hub),
    }
    genuine = seal_alert(
        make_content(CAM_A, 1), seq=1, device_key=keys[CAM_A].device, hub_key=hub.public_key()
    )
    squat = seal_alert(
        make_content(CAM_B, 1),
        seq=1,
        device_key=keys[CAM_B].device,
        hub_key=hub.public_key(),
        alert_id=genuine.header.alert_id,
    )
    with hub_with_cameras(mqtt_broker, tmp_path, keys) as (_store, receipts, links, acks):
        assert published(links[CAM_B], alert_topic(CAM_B), squat.envelope).ok
        assert wait_until(lambda: len(receipts) == 1)
        assert published(links[CAM_A], alert_topic(CAM_A), genuine.envelope).ok
        assert wait_until(lambda: len(receipts) == 2)
        assert [r.outcome for r in receipts] == ["stored", "stored"], [r.reason for r in receipts]
        assert acks[CAM_A].wait_for(1), "cam-a's alert was never acknowledged"


# -- finding 5: malleable envelopes --------------------------------------------------------------


def _with_extra_signature_key(envelope: bytes) -> bytes:
    env = json.loads(envelope)
    env["signatures"][0]["z"] = "x"
    return canonical_json(env)


def test_a_signed_token_with_an_extra_signature_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], operator_passphrase: str
) -> None:
    """``"z":"x"`` added to ``signatures[0]`` left the signature valid and the token was
    still VALID for ``lfr-agent activation verify``: an envelope object now holds exactly
    its keys, so no byte outside the signed content can change."""
    hub, keys = tmp_path / "hub", tmp_path / "keys"
    assert hub_main(["keys", "init", "--dir", str(hub), "--operator", "sup1"]) == 0
    assert hub_main(["keys", "export", "--hub-dir", str(hub), "--out", str(keys)]) == 0
    generate_device_keys(keys)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[device]\nid = "{CAM_A}"\n[paths]\nkeys_dir = "{keys}"\nstate_dir = "{tmp_path / "s"}"\n'
        "[activation]\nrequire_clock_sync = false\n"
    )
    token = tmp_path / "activation.json"
    assert (
        hub_main(
            [
                *("activate", "--hub-dir", str(hub), "--operator", "sup1", "--device", CAM_A),
                *("--deployment", "dep-1", "--duration", "4h", "--lease", "10m"),
                *("--watchlist", "ab" * 32, "--threshold", "0.6", "--officer", "PS 1"),
                *("--out", str(token)),
            ]
        )
        == 0
    )
    verify = ["activation", "verify", "--token", str(token), "--config", str(cfg)]
    assert agent_main([*verify, "--skip-watchlist"]) == 0
    capsys.readouterr()
    token.write_bytes(_with_extra_signature_key(token.read_bytes()))
    assert agent_main([*verify, "--skip-watchlist"]) == 1
    out = capsys.readouterr().out
    assert "✗ envelope" in out and "unknown signature field 'z'" in out
    assert "VALID activation" not in out and out.strip().endswith("INVALID")


def test_an_alert_with_an_extra_signature_key_is_refused(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    keys = {CAM_A: AlertKeys.generate()}
    sealed = seal_alert(
        make_content(CAM_A, 1),
        seq=1,
        device_key=keys[CAM_A].device,
        hub_key=keys[CAM_A].hub.public_key(),
    )
    with hub_with_cameras(mqtt_broker, tmp_path, keys) as (store, receipts, links, _acks):
        bent = _with_extra_signature_key(sealed.envelope)
        assert published(links[CAM_A], alert_topic(CAM_A), bent).ok
        assert wait_until(lambda: len(receipts) == 1)
        assert receipts[0].outcome == "rejected"
        assert "unknown signature field 'z'" in (receipts[0].reason or "")
        assert store.count() == 0


def test_a_re_encoded_resend_of_a_stored_alert_is_a_duplicate(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    """The same signed alert in other JSON spelling (key order, white space) is the same
    alert: acknowledged as a duplicate, not refused as a conflict for ever."""
    keys = {CAM_A: AlertKeys.generate()}
    sealed = seal_alert(
        make_content(CAM_A, 1),
        seq=1,
        device_key=keys[CAM_A].device,
        hub_key=keys[CAM_A].hub.public_key(),
    )
    env = json.loads(sealed.envelope)
    respelled = json.dumps(
        {
            "signatures": env["signatures"],
            "payloadType": env["payloadType"],
            "payload": env["payload"],
        },
        indent=1,
    ).encode()
    with hub_with_cameras(mqtt_broker, tmp_path, keys) as (_store, receipts, links, acks):
        assert published(links[CAM_A], alert_topic(CAM_A), sealed.envelope).ok
        assert wait_until(lambda: len(receipts) == 1)
        assert published(links[CAM_A], alert_topic(CAM_A), respelled).ok
        assert wait_until(lambda: len(receipts) == 2)
        assert [r.outcome for r in receipts] == ["stored", "duplicate"], [
            r.reason for r in receipts
        ]
        assert acks[CAM_A].wait_for(2)


# -- finding 4: terminal injection -----------------------------------------------------------------


def _report_body(device: str) -> dict[str, object]:
    now = time.time()
    return DeploymentReport(
        device_id=device,
        deployment_id="dep-1",
        activation_sequence=1,
        signer="supervisor-1",
        officer="PS 1",
        not_before=int(now) - 60,
        not_after=int(now) + 60,
        opened_at=now - 50,
        closed_at=now,
        end_reason="stopped",
        watchlist_sha256="ab" * 32,
        watchlist_size=2,
        threshold=0.6,
        detector_model="yunet",
        embedder_model="sface",
        frames=10,
        frames_dropped=0,
        faces_detected=4,
        faces_passed_quality=4,
        faces_compared=2,
        embeddings=2,
        tracks=2,
        alerts=1,
        software_version="0.1.0",
    ).body()


HOSTILE = "W-0001\x1b]0;all clear\x07\x1b[2J\r\u202e"


def _hostile_alert(keys: AlertKeys, device: str, **meta_changes: object) -> bytes:
    """An alert sealed and signed with the stolen camera's own keys whose fields carry
    terminal control: what ``seal_alert`` (which checks its fields) would never make."""
    header = canonical_json(
        {
            "alert_id": "c" * 32,
            "deployment": meta_changes.pop("deployment", "dep-1"),
            "device": device,
            "recipient": key_id(keys.hub.public_key()),
            "sealed_at": int(time.time()),
            "seq": 1,
            "v": 1,
        }
    )
    meta = canonical_json(
        {
            "device_id": device,
            "deployment_id": json.loads(header)["deployment"],
            "watchlist_entry": "W-0001",
            "score": 0.9,
            "threshold": 0.6,
            "model_id": "sface",
            "track_id": 1,
            "quality": {},
            "first_seen": 1.0,
            "decided_at": 2.0,
            "ack_secret": "ab" * 16,
            **meta_changes,
        }
    )
    plain = b"".join(len(p).to_bytes(4, "big") + p for p in (meta, FAKE_JPEG, b""))
    box = seal(keys.hub.public_key(), plain, aad=header, info=ALERT_INFO)
    body = {"header": base64.b64encode(header).decode(), "box": base64.b64encode(box).decode()}
    return sign_document(ALERT_PAYLOAD_TYPE, body, keys.device)


def test_a_stolen_camera_cannot_write_control_sequences_to_the_operators_terminal(
    mqtt_broker: MosquittoBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alert and report fields carrying ESC, BEL, CR or a bidi override are refused at
    receipt (nothing is stored), and whatever is printed is escaped: text already in the
    database (stored by a hub from before the checks) shows as visible escapes."""
    keys = {CAM_B: AlertKeys.generate()}
    store_path = tmp_path / "hub.db"
    with hub_with_cameras(mqtt_broker, tmp_path, keys) as (store, receipts, links, _acks):
        for change in (
            {"watchlist_entry": HOSTILE},
            {"model_id": "sface\x1b[1;1H"},
            {"deployment": "dep-1\r\x1b[K"},
        ):
            envelope = _hostile_alert(keys[CAM_B], CAM_B, **change)
            assert published(links[CAM_B], alert_topic(CAM_B), envelope).ok
        report = sign_document(
            REPORT_TYPE,
            {**_report_body(CAM_B), "officer": "PS 1\x1b]0;owned\x07"},
            keys[CAM_B].device,
        )
        reports = ReportReceiver(DeploymentReportStore(store_path), store.device_key)
        assert wait_until(lambda: len(receipts) == 3)
        assert [r.outcome for r in receipts] == ["rejected"] * 3
        assert all("is not valid" in (r.reason or "") for r in receipts)
        assert reports.receive(event_topic(CAM_B), report) == "rejected"
        assert store.count() == 0
        # The second wall: a row stored before the checks existed is printed escaped.
        content = dataclasses.replace(make_content(CAM_B, 1), watchlist_entry=HOSTILE)
        header = AlertHeader("c" * 32, CAM_B, content.deployment_id, 1, int(time.time()), "0" * 64)
        opened = OpenedAlert(header, content, "0" * 64, bytes(16))
        assert store.store_alert(opened) is StoreResult.STORED
    capsys.readouterr()
    assert hub_main(["alerts", "list", "--db", str(store_path)]) == 0
    assert hub_main(["alerts", "show", "c" * 32, "--db", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("W-0001\\x1b]0;all clear\\x07\\x1b[2J\\x0d\\u202e") == 2
    assert not any(c in out for c in "\x1b\x07\r\u202e")


# -- finding 6: lost reports ---------------------------------------------------------------------


def test_a_report_is_kept_and_resent_until_the_hub_acknowledges_it(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    """A deployment id may hold "." and "_", but the report archive's name check did not
    allow them, so such a report was never sent again after its first publish failed.
    And a PUBACK proved nothing: a report the broker took while no hub session existed
    was gone. Now a report stays pending until the hub's acknowledgement carries the
    secret sealed in it."""
    keys = AlertKeys.generate()
    deployment = "dep_2026.11-a"
    archive = ReportArchive(tmp_path / "state", 86400)
    body = {**_report_body(CAM_A), "deployment_id": deployment, "activation_sequence": 3}
    report = DeploymentReport(**{k: v for k, v in body.items() if k != "v"})  # type: ignore[arg-type]
    name = archive.save(report, sign_report(report, keys.device, keys.hub.public_key()))
    assert [n for n, _ in archive.unsent()] == [name]
    acks = Inbox()
    cam_a = MqttLink(mqtt_broker.client_settings(CAM_A))
    cam_a.subscribe(report_ack_topic(CAM_A), acks)
    cam_a.start()
    store = AlertStore(tmp_path / "hub.db")
    store.register_device_key(CAM_A, keys.device.public_key())
    hub = MqttLink(mqtt_broker.client_settings(HUB_CN))
    receiver = ReportReceiver(
        DeploymentReportStore(tmp_path / "hub.db"),
        store.device_key,
        hub_key=keys.hub,
        acknowledge=hub.publish,
    )
    hub.subscribe(ALL_EVENTS, receiver.handle)
    try:
        assert cam_a.wait_connected(10)
        # First publish: the broker takes it, but no hub session exists to queue it for.
        for n, signed in archive.unsent():
            assert published(cam_a, event_topic(CAM_A), signed).ok
            archive.mark_sent(n)
        assert [n for n, _ in archive.unsent()] == [name], "a PUBACK marked it delivered"
        hub.start()
        assert hub.wait_connected(10)
        for _, signed in archive.unsent():  # what the camera does on its resend timer
            assert published(cam_a, event_topic(CAM_A), signed).ok
        assert acks.wait_for(1), "the hub never acknowledged the report"
        ((deployment_id, seq, secret),) = decode_report_ack(acks.messages[0][1])
        assert (deployment_id, seq) == (deployment, 3)
        assert archive.acknowledge(CAM_A, deployment_id, seq, secret, keys.device)
        assert archive.unsent() == []
        assert receiver.stored == 1 and receiver.acked == 1
    finally:
        hub.stop()
        cam_a.stop()
        store.close()


def test_a_forged_report_acknowledgement_keeps_the_report_pending(tmp_path: Path) -> None:
    """Whoever may write the camera's report-ack topic (the broker, a hub certificate)
    sees the report in clear but not the secret sealed in it."""
    keys = AlertKeys.generate()
    archive = ReportArchive(tmp_path / "state", 86400)
    report = DeploymentReport(**{k: v for k, v in _report_body(CAM_A).items() if k != "v"})  # type: ignore[arg-type]
    archive.save(report, sign_report(report, keys.device, keys.hub.public_key()))
    for secret in (bytes(16), b"\xff" * 16, keys.device.public_key().public_bytes_raw()[:16]):
        assert not archive.acknowledge(CAM_A, "dep-1", 1, secret, keys.device)
    assert len(archive.unsent()) == 1


# -- finding 1, second half: a stop shows as delivered only when the camera confirms it -------


@pytest.mark.slow
def test_a_stop_shows_as_delivered_only_when_the_camera_confirms_it(
    mqtt_broker: MosquittoBroker,
    tmp_path: Path,
    models_dir: Path,
    shared_data: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``lfr-hub publish`` used to report a stop "accepted by the broker" while a thief
    held the camera's session and the camera captured on. It now waits for the camera's
    signed receipt for that very file: delivered (applied, camera closed) with the real
    agent running, a thief's takeover attempt changes nothing, and with the camera away
    the command says the stop is not confirmed and exits 1."""
    site = VirtualSite(tmp_path / "site", mqtt_broker, models_dir, device_id=CAM_A)
    site.write_device_config(shared_data / "scenes" / "no_faces", fps=5, loop=True)
    mqtt_broker.client_files("hub.publish", roles=("control",))
    bundle = watchlist_for(site, shared_data, models_dir)
    files = tmp_path / "documents"
    files.mkdir()
    (files / "watchlist").write_bytes(bundle.data)
    (files / "activation.json").write_bytes(
        site.issuer().activation(CAM_A, DEPLOYMENT, 3600, 600, bundle.watchlist_hash, 0.5, "PS 1")
    )
    (files / "stop.json").write_bytes(site.issuer().stop(CAM_A, DEPLOYMENT, "officers left"))
    (files / "again.json").write_bytes(
        site.issuer().activation(CAM_A, DEPLOYMENT, 3600, 600, bundle.watchlist_hash, 0.5, "PS 1")
    )

    def publish(name: str, wait: str = "60") -> tuple[int, str]:
        capsys.readouterr()
        rc = hub_main(
            [
                *("publish", str(files / name), "--device", CAM_A, "--wait", wait),
                *("--broker", f"{mqtt_broker.host}:{mqtt_broker.port}"),
                *("--pki-dir", str(mqtt_broker.pki_dir), "--db", str(site.hub_db)),
            ]
        )
        return rc, capsys.readouterr().out

    agent = site.start_device()
    try:
        wait_for("the agent ready", lambda: "agent ready" in agent.log_text(), 120)
        rc, out = publish("watchlist")
        assert rc == 0 and "delivered: cam-a applied watchlist" in out, out
        rc, out = publish("activation.json")
        assert rc == 0 and "applied activation dep-e2e-001" in out, out
        assert "camera open" in out or "camera armed" in out, out
        thief = attacker(mqtt_broker, CAM_A, clean_start=True)
        assert thief.connect()
        rc, out = publish("stop.json")
        thief.close()
        assert rc == 0, out
        assert "delivered: cam-a applied stop dep-e2e-001" in out and "camera closed" in out
    finally:
        assert agent.stop() == 0
    # The camera is away: the broker takes the document, nobody confirms it.
    rc, out = publish("again.json", wait="2")
    assert rc == 1
    assert "accepted by the broker, not confirmed by the camera cam-a" in out


# -- issue 15 item 7: withdrawing a stolen camera -------------------------------------------------


@pytest.mark.slow
def test_a_withdrawn_camera_is_shut_out_of_the_broker_and_the_hub(
    mqtt_broker: MosquittoBroker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    operator_passphrase: str,
) -> None:
    """``lfr-hub device withdraw``: the camera is disconnected at once, its certificate is
    refused at the handshake once the broker re-read the revocation list, its signing key
    is no longer accepted, it gets no watchlist or activation and cannot be enrolled
    again, and the withdrawal is recorded."""
    site = make_site(
        tmp_path,
        CAM_A,
        pki_dir=mqtt_broker.pki_dir,
        broker_url=f"mqtts://{mqtt_broker.host}:{mqtt_broker.port}",
    )
    request = site.request()
    assert site.complete(site.approve(request), "--root-fingerprint", site.root_fingerprint) == 0
    mqtt_broker.admin_settings()
    where = ["--broker", f"{mqtt_broker.host}:{mqtt_broker.port}"]
    where += ["--pki-dir", str(mqtt_broker.pki_dir)]
    assert hub_main(["broker", "grant", "--device", CAM_A, *where]) == 0
    cfg = load_config(site.config)
    device_key = load_device_keys(site.keys_dir).signing
    hub_key = HubKeyStore.open(site.hub_dir).alert_private_key()
    store = AlertStore(str(site.db))
    receiver = AlertReceiver(store, hub_key)

    def alert(seq: int) -> bytes:
        sealed = seal_alert(
            make_content(CAM_A, seq), seq=seq, device_key=device_key, hub_key=hub_key.public_key()
        )
        return sealed.envelope

    dropped = threading.Event()
    camera = MqttLink(MqttSettings.from_config(cfg.mqtt, CAM_A), on_disconnected=dropped.set)
    camera.start()
    try:
        assert camera.wait_connected(10)
        assert published(camera, alert_topic(CAM_A), b"x").ok
        assert receiver.receive(alert_topic(CAM_A), alert(1)).outcome == "stored"
        capsys.readouterr()
        rc = hub_main(
            [
                *("device", "withdraw", CAM_A, "--hub-dir", str(site.hub_dir)),
                *("--by", "PS 1234", "--reason", "stolen from pole 7", "--db", str(site.db)),
                *where,
            ]
        )
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "rights removed, disconnected" in out and "no longer accepted" in out
        assert dropped.wait(10), "the withdrawn camera stayed connected"
    finally:
        camera.stop(graceful=False)
    # Its key: refused at the hub from now on.
    rejected = receiver.receive(alert_topic(CAM_A), alert(2))
    assert rejected.outcome == "rejected" and "not enrolled" in (rejected.reason or "")
    record = store.withdrawal(CAM_A)
    assert record is not None and record["by_ref"] == "PS 1234"
    assert record["reason"] == "stolen from pole 7" and record["revoked_serials"]
    store.close()
    # Its certificate: refused at the TLS handshake once the broker re-read the list.
    mqtt_broker.reload()
    assert check_broker(cfg, 5.0).status is Status.FAIL
    # No watchlist, no activation, no second enrolment under its id.
    assert (
        hub_main(
            [
                *("activate", "--hub-dir", str(site.hub_dir), "--operator", "supervisor"),
                *("--device", CAM_A, "--deployment", "dep-1", "--duration", "1h"),
                *("--lease", "10m", "--watchlist", "ab" * 32, "--threshold", "0.6"),
                *("--officer", "PS 1", "--out", str(tmp_path / "a.json")),
            ]
        )
        == 2
    )
    assert "withdrawn" in capsys.readouterr().err
    with pytest.raises(AssertionError):
        site.approve(request, "--replace")
    assert "withdrawn for good" in capsys.readouterr().err
    assert hub_main(["device", "list", "--hub-dir", str(site.hub_dir)]) == 0
    assert "WITHDRAWN" in capsys.readouterr().out
