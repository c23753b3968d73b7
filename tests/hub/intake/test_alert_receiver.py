"""The hub receiver: verify, check sender, decrypt, store once, ack after commit."""

from __future__ import annotations

import base64
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.alert_factory import AlertKeys, make_content
from support.mosquitto_broker import HUB_CN, MosquittoBroker

from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker, Receipt
from agent.hub.store.alert_store import AlertStore
from agent.protocol.topics import ack_topic, alert_topic
from agent.transport.mqtt_link import MqttLink
from agent.trust.alert_envelope import decode_ack, seal_alert
from agent.trust.signed_document import canonical_json

KEYS = AlertKeys.generate()
DEV = "lfr-test-01"


@dataclass
class HubAndCamera:
    """A hub worker on the real broker and a camera link that collects the acks it gets."""

    worker: HubAlertWorker
    camera: MqttLink
    receipts: list[Receipt]
    acks: list[list[tuple[str, bytes]]]
    got_ack: threading.Event


@contextmanager
def hub_and_camera(
    mqtt_broker: MosquittoBroker, receiver: AlertReceiver, **worker_options: Any
) -> Iterator[HubAndCamera]:
    receipts: list[Receipt] = []
    worker = HubAlertWorker(
        MqttLink(mqtt_broker.client_settings(HUB_CN)),
        receiver,
        on_receipt=receipts.append,
        **worker_options,
    )
    acks: list[list[tuple[str, bytes]]] = []
    got_ack = threading.Event()

    def on_ack(topic: str, payload: bytes) -> None:
        acks.append(decode_ack(payload))
        got_ack.set()

    camera = MqttLink(mqtt_broker.client_settings(DEV))
    camera.subscribe(ack_topic(DEV), on_ack)
    worker.start()
    camera.start()
    try:
        assert worker.link.wait_connected(10) and camera.wait_connected(10)
        yield HubAndCamera(worker, camera, receipts, acks, got_ack)
    finally:
        camera.stop()
        worker.stop()


def sealed(seq: int, device: str = DEV, now: float | None = None) -> bytes:
    return seal_alert(
        make_content(device, seq),
        seq=seq,
        device_key=KEYS.device,
        hub_key=KEYS.hub.public_key(),
        now=now,
    ).envelope


@pytest.fixture
def receiver(hub_db_url: str) -> AlertReceiver:
    store = AlertStore(hub_db_url)
    store.register_device_key(DEV, KEYS.device.public_key())
    store.register_device_key("lfr-test-02", Ed25519PrivateKey.generate().public_key())
    return AlertReceiver(store, KEYS.hub)


def test_valid_alert_is_stored_once_and_copies_are_duplicates(receiver: AlertReceiver) -> None:
    env = sealed(1)
    assert receiver.receive(alert_topic(DEV), env).outcome == "stored"
    assert receiver.receive(alert_topic(DEV), env).outcome == "duplicate"
    assert receiver.store.count() == 1
    s = receiver.stats
    assert (s.received, s.stored, s.duplicates, s.rejected) == (2, 1, 1, 0)


def test_rejections_name_the_reason_and_log_no_content(
    receiver: AlertReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    env = sealed(1)
    cases = {
        "other device's topic": (alert_topic("lfr-test-02"), env),
        "unknown device": (alert_topic("lfr-test-03"), env),
        "not an alert topic": (ack_topic(DEV), env),
        "foreign namespace": ("other/thing", env),
        "stale replay": (alert_topic(DEV), sealed(2, now=time.time() - 40 * 86400)),
    }
    caplog.set_level(logging.WARNING)
    for name, (topic, payload) in cases.items():
        r = receiver.receive(topic, payload)
        assert r.outcome == "rejected", name
        assert r.reason
    assert receiver.store.count() == 0
    assert "W-0001" not in caplog.text and "JFIF" not in caplog.text
    assert caplog.text.count("alert rejected") == len(cases)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[" * 200_000, "nested deeper"),
        (b"1" * 5000, "out of range"),
        (b'{"payload": ' + b"9" * 5000 + b"}", "out of range"),
    ],
    ids=["deep-nesting", "huge-integer", "huge-integer-in-object"],
)
def test_hostile_json_is_rejected_with_the_reason(
    receiver: AlertReceiver, payload: bytes, reason: str
) -> None:
    r = receiver.receive(alert_topic(DEV), payload)
    assert r.outcome == "rejected" and reason in (r.reason or "")


def test_a_tampered_envelope_is_rejected(receiver: AlertReceiver) -> None:
    doc = json.loads(sealed(1))
    body = json.loads(base64.b64decode(doc["payload"]))
    body["box"] = base64.b64encode(base64.b64decode(body["box"])[:-1] + b"\0").decode()
    doc["payload"] = base64.b64encode(canonical_json(body)).decode()
    r = receiver.receive(alert_topic(DEV), canonical_json(doc))
    assert r.outcome == "rejected" and "signature" in (r.reason or "")


def test_reused_sequence_under_a_new_id_is_rejected(receiver: AlertReceiver) -> None:
    assert receiver.receive(alert_topic(DEV), sealed(5)).outcome == "stored"
    r = receiver.receive(alert_topic(DEV), sealed(5))
    assert r.outcome == "rejected" and "replay or forgery" in (r.reason or "")


def test_a_purged_alert_sent_again_is_a_duplicate_not_stored(receiver: AlertReceiver) -> None:
    env = sealed(1)
    assert receiver.receive(alert_topic(DEV), env).outcome == "stored"
    time.sleep(0.01)
    assert receiver.store.purge_older_than(0) == 1
    r = receiver.receive(alert_topic(DEV), env)
    assert r.outcome == "duplicate" and r.alert is not None
    assert receiver.store.count() == 0
    assert (receiver.stats.stored, receiver.stats.duplicates) == (1, 1)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    topic=st.one_of(
        st.just(alert_topic(DEV)),
        st.just(alert_topic("lfr-test-02")),
        st.text(max_size=60),
        st.builds(lambda d: f"lfr/v1/{d}/alert", st.text(max_size=20)),
    ),
    payload=st.one_of(
        st.binary(max_size=4096),
        st.builds(lambda o: json.dumps(o).encode(), st.dictionaries(st.text(), st.text())),
        st.builds(
            lambda o: json.dumps(o).encode(),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False),
                lambda inner: (
                    st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4)
                ),
                max_leaves=20,
            ),
        ),
        st.builds(lambda n: b"[" * n + b"]" * n, st.integers(0, 200_000)),
        st.builds(lambda n: b'{"payload":' + b"9" * n + b"}", st.integers(1, 20_000)),
        st.builds(
            lambda p: canonical_json(
                {
                    "payloadType": "application/vnd.lfr.alert+json; v=1",
                    "payload": p,
                    "signatures": [{"keyid": "00", "sig": p}],
                }
            ),
            st.text(max_size=100),
        ),
    ),
)
def test_fuzzed_messages_are_rejected_without_raising(
    receiver: AlertReceiver, topic: str, payload: bytes
) -> None:
    assert receiver.receive(topic, payload).outcome == "rejected"


@pytest.mark.system
def test_worker_stores_then_acks_and_survives_garbage(
    mqtt_broker: MosquittoBroker, hub_db_url: str
) -> None:
    store = AlertStore(hub_db_url)
    store.register_device_key(DEV, KEYS.device.public_key())
    with hub_and_camera(mqtt_broker, AlertReceiver(store, KEYS.hub), share_group="hubs") as w:
        dev, receipts, acks, got_ack = w.camera, w.receipts, w.acks, w.got_ack
        rng = random.Random(5)
        garbage = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(60)]
        garbage += [b"", b"{}", b"null", b'{"payloadType":1}', b"\xff" * 10]
        for g in garbage:
            dev.publish(alert_topic(DEV), g)
        alert = seal_alert(
            make_content(DEV, 1), seq=1, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
        )
        dev.publish(alert_topic(DEV), alert.envelope)
        assert got_ack.wait(15)
        deadline = time.monotonic() + 10
        while len(receipts) < len(garbage) + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        outcomes = [r.outcome for r in receipts]
        assert outcomes.count("rejected") == len(garbage)
        assert outcomes.count("stored") == 1
        assert store.count() == 1
        stored_id = next(r.alert.header.alert_id for r in receipts if r.alert)
        # The ack carries the secret the hub decrypted, which is what the device kept.
        assert acks == [[(stored_id, alert.ack_secret)]]
        assert store.ack_secret(stored_id) == alert.ack_secret


@pytest.mark.system
def test_worker_acknowledges_a_late_copy_of_a_purged_alert(
    mqtt_broker: MosquittoBroker, hub_db_url: str
) -> None:
    store = AlertStore(hub_db_url)
    store.register_device_key(DEV, KEYS.device.public_key())
    receiver = AlertReceiver(store, KEYS.hub)
    alert = seal_alert(
        make_content(DEV, 1), seq=1, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
    )
    assert receiver.receive(alert_topic(DEV), alert.envelope).outcome == "stored"
    time.sleep(0.01)
    assert store.purge_older_than(0) == 1
    with hub_and_camera(mqtt_broker, receiver) as w:
        w.camera.publish(alert_topic(DEV), alert.envelope)  # the camera never got its first ack
        assert w.got_ack.wait(15)
        assert w.acks == [[(alert.header.alert_id, alert.ack_secret)]]
        assert [r.outcome for r in w.receipts] == ["duplicate"]
        assert store.count() == 0 and store.crop(alert.header.alert_id) is None


@pytest.mark.system
def test_two_workers_in_a_share_group_split_the_load_and_store_each_alert_once(
    mqtt_broker: MosquittoBroker, hub_db_url: str
) -> None:
    db = hub_db_url
    AlertStore(db).register_device_key(DEV, KEYS.device.public_key())
    workers = [
        HubAlertWorker(
            MqttLink(mqtt_broker.client_settings(f"hub.w{i}", roles=("intake",))),
            AlertReceiver(AlertStore(db), KEYS.hub),
            share_group="hubs",
        )
        for i in (1, 2)
    ]
    dev = MqttLink(mqtt_broker.client_settings(DEV))
    for w in workers:
        w.start()
    dev.start()
    try:
        assert all(w.link.wait_connected(10) for w in workers) and dev.wait_connected(10)
        envelopes = [sealed(i) for i in range(1, 41)]
        for env in envelopes + envelopes[:10]:  # ten redeliveries
            dev.publish(alert_topic(DEV), env)
        deadline = time.monotonic() + 20
        # ``received`` counts a message as it starts; wait for its outcome instead.
        while (
            time.monotonic() < deadline
            and sum(
                w.receiver.stats.stored + w.receiver.stats.duplicates + w.receiver.stats.rejected
                for w in workers
            )
            < 50
        ):
            time.sleep(0.05)
        stats = [w.receiver.stats for w in workers]
        assert all(s.received > 0 for s in stats)  # both workers took a share
        assert sum(s.stored for s in stats) == 40
        assert sum(s.duplicates for s in stats) == 10
        assert AlertStore(db).count() == 40
    finally:
        dev.stop()
        for w in workers:
            w.stop()


def test_a_re_flashed_camera_approved_with_replace_gets_its_new_alerts_stored(
    receiver: AlertReceiver,
) -> None:
    store = receiver.store
    for seq in (1, 2):
        assert receiver.receive(alert_topic(DEV), sealed(seq)).outcome == "stored"
    store.purge_older_than(-1.0)  # everything received so far becomes a tombstone
    assert receiver.receive(alert_topic(DEV), sealed(3)).outcome == "stored"
    # Re-flashed: a new signing key and its sequence from 1 again; the hub re-approves it.
    reflashed = Ed25519PrivateKey.generate()
    store.register_device_key(DEV, reflashed.public_key())
    for seq in (1, 2, 3):
        new = seal_alert(
            make_content(DEV, seq), seq=seq, device_key=reflashed, hub_key=KEYS.hub.public_key()
        )
        receipt = receiver.receive(alert_topic(DEV), new.envelope)
        assert receipt.outcome == "stored", receipt.reason
        assert store.ack_secret(new.header.alert_id) == new.ack_secret  # so it is acked
        assert receiver.receive(alert_topic(DEV), new.envelope).outcome == "duplicate"
    assert receiver.stats.rejected == 0
