"""Outbox → MQTT → hub → ack → outbox delete, through a real mosquitto."""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.alert_factory import AlertKeys, make_content
from support.mosquitto_broker import HUB_CN, MosquittoBroker

from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker
from agent.hub.store.alert_store import AlertStore
from agent.protocol.topics import ack_topic
from agent.transport.alert_outbox import AlertOutbox
from agent.transport.alert_publisher import AlertPublisher
from agent.transport.mqtt_link import MqttLink, PublishResult
from agent.trust.alert_envelope import encode_ack

pytestmark = pytest.mark.system
DEV = "lfr-test-01"


def wait_until(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def outbox(folder: Path) -> AlertOutbox:
    return AlertOutbox(
        folder,
        max_bytes=10_000_000,
        alarm_fraction=0.9,
        retention_s=86400,
        audit=lambda e, f: None,
    )


def test_alerts_are_deleted_from_the_outbox_only_after_the_hub_stored_them(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    keys = AlertKeys.generate()
    store = AlertStore(tmp_path / "hub.db")
    store.register_device_key(DEV, keys.device.public_key())
    box = outbox(tmp_path / "outbox")
    dev_link = MqttLink(mqtt_broker.client_settings(DEV))
    pub = AlertPublisher(
        box, dev_link, device_id=DEV, device_key=keys.device, hub_key=keys.hub.public_key()
    )
    # Alerts raised while the hub is not running wait in the outbox, not in memory.
    ids = [pub.submit(make_content(DEV, i)).header.alert_id for i in range(20)]
    dev_link.start()
    pub.start()
    try:
        assert dev_link.wait_connected(10)
        assert wait_until(lambda: pub.published >= 20)
        assert len(box) == 20  # published, but nobody acknowledged yet
        worker = HubAlertWorker(
            MqttLink(mqtt_broker.client_settings(HUB_CN, "hub-main-1")),
            AlertReceiver(store, keys.hub),
        )
        worker.start()
        try:
            # The hub had no session when they were published, so the broker dropped
            # those copies; the resend timer delivers them again.
            pub.resend_after_s = 0.5
            assert wait_until(lambda: len(box) == 0), f"{len(box)} left"
            assert sorted(r.alert_id for r in store.list_alerts(limit=100)) == sorted(ids)
        finally:
            worker.stop()
    finally:
        pub.stop()
        dev_link.stop()


def test_broker_refusal_keeps_the_alert_and_garbage_acks_are_ignored(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    keys = AlertKeys.generate()
    box = outbox(tmp_path / "outbox")
    # Misprovisioned: the certificate is for another device, so the ACL refuses (135).
    link = MqttLink(mqtt_broker.client_settings("lfr-other", client_id=DEV))
    pub = AlertPublisher(
        box, link, device_id=DEV, device_key=keys.device, hub_key=keys.hub.public_key()
    )
    sealed = pub.submit(make_content(DEV, 1))
    aid = sealed.header.alert_id
    link.start()
    pub.start()
    try:
        assert link.wait_connected(10)
        assert wait_until(lambda: pub.rejected_by_broker >= 1)
        assert aid in box
        # Malformed acks (and acks for unknown ids) on the ack topic change nothing.
        rng = random.Random(3)
        for payload in [rng.randbytes(rng.randrange(200)) for _ in range(30)] + [
            b'{"ack": 5}',
            encode_ack([("0" * 32, bytes(16))]),
        ]:
            pub._on_ack(ack_topic(DEV), payload)
        assert aid in box and pub.acknowledged == 0
        pub._on_ack(ack_topic(DEV), encode_ack([(aid, sealed.ack_secret)]))
        assert aid not in box and pub.acknowledged == 1
    finally:
        pub.stop()
        link.stop()


def test_alerts_queued_on_the_broker_disk_hold_no_readable_biometrics(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    keys = AlertKeys.generate()
    store = AlertStore(tmp_path / "hub.db")
    store.register_device_key(DEV, keys.device.public_key())
    # The hub makes its persistent session, then goes away: the broker queues for it.
    hub = HubAlertWorker(
        MqttLink(mqtt_broker.client_settings(HUB_CN, "hub-main-1")), AlertReceiver(store, keys.hub)
    )
    hub.start()
    assert hub.link.wait_connected(10)
    hub.stop()
    box = outbox(tmp_path / "outbox")
    link = MqttLink(mqtt_broker.client_settings(DEV))
    pub = AlertPublisher(
        box, link, device_id=DEV, device_key=keys.device, hub_key=keys.hub.public_key()
    )
    contents = [make_content(DEV, 4242 + i, scene=True) for i in range(5)]
    envelopes = [pub.submit(c).envelope for c in contents]
    link.start()
    pub.start()
    try:
        assert wait_until(lambda: pub.published >= 5)
        time.sleep(0.3)
    finally:
        pub.stop()
        link.stop()
    mqtt_broker.stop()  # SIGTERM: mosquitto writes its persistence file
    db = (mqtt_broker.data_dir / "mosquitto.db").read_bytes()
    # The queued alerts are on the broker's disk, as opaque envelopes only.
    assert all(env in db for env in envelopes)
    for c in contents:
        for secret in (c.probe_jpeg[:48], c.watchlist_entry.encode()):
            assert secret not in db
            assert base64.b64encode(secret)[:40] not in db


def test_forged_acks_through_the_broker_delete_nothing_a_hub_ack_does(
    mqtt_broker: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Identities the broker lets write the camera's ack topic (hub certificates of the
    intake role) know alert ids but not the secrets sealed inside the alerts; the
    camera's own certificate may not write there at all."""
    caplog.set_level(logging.WARNING, logger="agent.transport.alert_publisher")
    keys = AlertKeys.generate()
    box = outbox(tmp_path / "outbox")
    dev_link = MqttLink(mqtt_broker.client_settings(DEV))
    pub = AlertPublisher(
        box, dev_link, device_id=DEV, device_key=keys.device, hub_key=keys.hub.public_key()
    )
    sealed = [pub.submit(make_content(DEV, i)) for i in range(3)]
    ids = [s.header.alert_id for s in sealed]
    a, b, c = ids
    entry_a = {"alert_id": a, "secret": sealed[0].ack_secret.hex()}
    forged = [
        encode_ack([(a, os.urandom(16)), (b, os.urandom(16)), (c, os.urandom(16))]),
        encode_ack([(a, sealed[1].ack_secret)]),  # a genuine secret, of another alert
        json.dumps({"ack": ids}).encode(),  # the id-only ack of the earlier format
        json.dumps({"ack": [{"alert_id": a}], "v": 2}).encode(),
        json.dumps({"ack": [{**entry_a, "secret": entry_a["secret"][:-2]}], "v": 2}).encode(),
        b'{"ack": null, "v": 2}',
        os.urandom(300),
        b"",
    ]
    refused_entries = 3 + 1 + 6  # per-entry refusals, plus one per malformed payload
    dev_link.start()
    pub.start()
    forgers = [
        MqttLink(mqtt_broker.client_settings("hub.forger-1", roles=("intake",))),
        MqttLink(mqtt_broker.client_settings("hub.forger-2", roles=("intake",))),
    ]
    worker = HubAlertWorker(
        MqttLink(mqtt_broker.client_settings(HUB_CN)),
        AlertReceiver(AlertStore(tmp_path / "hub.db"), keys.hub),
    )
    worker.receiver.store.register_device_key(DEV, keys.device.public_key())
    try:
        assert dev_link.wait_connected(10)
        assert wait_until(lambda: pub.published >= 3)
        own: list[PublishResult] = []
        dev_link.publish(ack_topic(DEV), forged[0], on_result=own.append)
        assert wait_until(lambda: len(own) == 1) and own[0].reason_code == 135
        results: list[PublishResult] = []
        for forger in forgers:
            forger.start()
            assert forger.wait_connected(10)
            for payload in forged:
                forger.publish(ack_topic(DEV), payload, on_result=results.append)
        # The broker accepted every forgery (the ACL allows these identities) ...
        assert wait_until(lambda: len(results) == 2 * len(forged))
        assert all(r.ok for r in results)
        # ... and the camera received every one and deleted nothing.
        assert wait_until(lambda: pub.forged_acks >= 2 * refused_entries)
        assert pub.forged_acks == 2 * refused_entries
        assert pub.acknowledged == 0 and len(box) == 3
        assert sorted(e.alert_id for e in outbox(tmp_path / "outbox").pending()) == sorted(ids)
        # The entries stay on their usual resend timer: they go out again.
        sent_before = pub.published
        pub.resend_after_s = 0.5
        assert wait_until(lambda: pub.published >= sent_before + 3)
        warnings = [r for r in caplog.records if "without a valid hub proof" in r.getMessage()]
        assert 1 <= len(warnings) < pub.forged_acks  # once per burst, not once per ack
        assert not any(aid in r.getMessage() for r in caplog.records for aid in ids)
        # The genuine hub decrypts the secret and its ack deletes each entry.
        worker.start()
        assert wait_until(lambda: len(box) == 0), f"{len(box)} left"
        assert pub.acknowledged == 3 and worker.receiver.store.count() == 3
        assert not list((tmp_path / "outbox").glob("*.alert"))
    finally:
        worker.stop()
        for forger in forgers:
            forger.stop()
        pub.stop()
        dev_link.stop()
