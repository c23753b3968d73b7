"""The MQTT link against a real mosquitto running the shipped config (mTLS + ACL)."""

from __future__ import annotations

import dataclasses
import logging
import random
import socket
import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.mosquitto_broker import HUB_CN, MosquittoBroker
from support.tcp_cut_proxy import TcpCutProxy

from agent.protocol.topics import ack_topic, alert_topic, status_topic
from agent.transport.mqtt_link import MqttLink, MqttLinkError, MqttSettings, PublishResult

pytestmark = pytest.mark.system


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.event = threading.Event()

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self.event.set()

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.messages) >= n


def publish_and_wait(link: MqttLink, topic: str, payload: bytes) -> PublishResult:
    results: list[PublishResult] = []
    done = threading.Event()

    def got(r: PublishResult) -> None:
        results.append(r)
        done.set()

    link.publish(topic, payload, on_result=got)
    assert done.wait(10), "no PUBACK"
    return results[0]


def test_device_publishes_to_its_own_topic_and_hub_receives(mqtt_broker: MosquittoBroker) -> None:
    inbox = Inbox()
    hub = MqttLink(mqtt_broker.client_settings(HUB_CN))
    hub.subscribe("lfr/v1/+/alert", inbox)
    hub.start()
    dev = MqttLink(mqtt_broker.client_settings("dev-a"))
    dev.start()
    try:
        assert hub.wait_connected(10) and dev.wait_connected(10)
        result = publish_and_wait(dev, alert_topic("dev-a"), b"sealed")
        assert result.ok, result.reason
        assert inbox.wait_for(1)
        assert inbox.messages[0] == ("lfr/v1/dev-a/alert", b"sealed")
    finally:
        dev.stop()
        hub.stop()


def test_publish_to_another_devices_topic_is_an_error(mqtt_broker: MosquittoBroker) -> None:
    inbox = Inbox()
    hub = MqttLink(mqtt_broker.client_settings(HUB_CN))
    hub.subscribe("lfr/v1/+/alert", inbox)
    hub.start()
    dev = MqttLink(mqtt_broker.client_settings("dev-a"))
    dev.start()
    owner = MqttLink(mqtt_broker.client_settings("dev-b"))
    owner.start()
    try:
        assert hub.wait_connected(10) and dev.wait_connected(10) and owner.wait_connected(10)
        denied = publish_and_wait(dev, alert_topic("dev-b"), b"forged")
        assert not denied.ok
        assert denied.reason_code == 135  # not authorised
        assert publish_and_wait(dev, alert_topic("dev-a"), b"real").ok
        # The broker routes a message to its subscribers while handling the PUBLISH,
        # before its PUBACK; a copy of the forged message would therefore sit in the
        # hub's session queue ahead of a sentinel published on the same topic after
        # that PUBACK, and a session's queue is delivered in order.
        assert publish_and_wait(owner, alert_topic("dev-b"), b"sentinel").ok
        assert inbox.wait_for(2)
        assert sorted(inbox.messages) == [
            ("lfr/v1/dev-a/alert", b"real"),
            ("lfr/v1/dev-b/alert", b"sentinel"),
        ]
    finally:
        owner.stop()
        dev.stop()
        hub.stop()


def test_device_cannot_subscribe_outside_its_own_topics(mqtt_broker: MosquittoBroker) -> None:
    """The broker refuses the subscriptions themselves (not only the deliveries): a camera
    cannot even join a wildcard or shared subscription that covers another's topics."""
    spy_inbox = Inbox()
    spy = MqttLink(mqtt_broker.client_settings("dev-b"))
    wanted = ["lfr/v1/dev-a/#", "lfr/v1/+/ack", "$share/hub/lfr/v1/+/alert", "#"]
    for topic_filter in wanted:
        spy.subscribe(topic_filter, spy_inbox)
    spy.subscribe(ack_topic("dev-b"), spy_inbox)
    spy.start()
    own_inbox = Inbox()
    dev = MqttLink(mqtt_broker.client_settings("dev-a"))
    dev.subscribe(ack_topic("dev-a"), own_inbox)
    dev.start()
    hub = MqttLink(mqtt_broker.client_settings(HUB_CN))
    hub.start()
    try:
        assert spy.wait_connected(10) and dev.wait_connected(10) and hub.wait_connected(10)
        assert spy.refused_subscriptions == set(wanted)
        assert dev.refused_subscriptions == set()
        assert publish_and_wait(hub, ack_topic("dev-a"), b"x").ok
        # The owner's own subscription sees it, so delivery works.
        assert own_inbox.wait_for(1)
        # The broker queues a message for every matching subscription while it handles
        # the PUBLISH, before the PUBACK: a leaked copy would be ahead of this sentinel.
        assert publish_and_wait(hub, ack_topic("dev-b"), b"sentinel").ok
        assert spy_inbox.wait_for(1)
        assert spy_inbox.messages == [("lfr/v1/dev-b/ack", b"sentinel")]
    finally:
        hub.stop()
        dev.stop()
        spy.stop()


def test_client_without_certificate_is_refused(mqtt_broker: MosquittoBroker) -> None:
    ctx = ssl.create_default_context(cafile=str(mqtt_broker.pki_dir / "ca.pem"))
    ctx.check_hostname = False
    refused = False
    try:
        with (
            socket.create_connection((mqtt_broker.host, mqtt_broker.port), timeout=5) as raw,
            ctx.wrap_socket(raw) as tls,
        ):
            # TLS 1.3 reports the missing certificate on the first read.
            tls.sendall(b"\x10\x00")
            refused = tls.recv(1) == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        refused = True
    assert refused


def test_paho_client_without_certificate_never_connects(mqtt_broker: MosquittoBroker) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anon", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(mqtt_broker.pki_dir / "ca.pem"))
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
    with pytest.raises((ssl.SSLError, OSError)):
        client.connect(mqtt_broker.host, mqtt_broker.port)
        client.loop(timeout=2)
        client.loop(timeout=2)
        if not connected.is_set():
            raise OSError("not connected")
    assert not connected.is_set()


def test_status_is_retained_and_last_will_reports_offline(
    mqtt_broker: MosquittoBroker,
) -> None:
    proxy = TcpCutProxy(mqtt_broker.port)
    settings = dataclasses.replace(mqtt_broker.client_settings("dev-a"), port=proxy.port)
    dev = MqttLink(settings, status_topic=status_topic("dev-a"))
    dev.start()
    inbox = Inbox()
    hub = MqttLink(mqtt_broker.client_settings(HUB_CN, "hub-status"))
    hub.subscribe("lfr/v1/+/status", inbox)
    try:
        assert dev.wait_connected(10)
        done = threading.Event()
        dev.publish_status(b'{"state":"online"}', on_result=lambda r: done.set())
        assert done.wait(10)
        hub.start()
        assert hub.wait_connected(10)
        assert inbox.wait_for(1)
        assert inbox.messages[0] == ("lfr/v1/dev-a/status", b'{"state":"online"}')  # retained
        proxy.cut()  # the device vanishes without a DISCONNECT: the broker sends its will
        assert inbox.wait_for(2)
        assert inbox.messages[1] == ("lfr/v1/dev-a/status", b"offline")
    finally:
        dev.stop()
        hub.stop()
        proxy.close()


def test_connect_listeners_run_on_every_reconnect_and_may_fail_alone(
    mqtt_broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = TcpCutProxy(mqtt_broker.port)
    settings = dataclasses.replace(mqtt_broker.client_settings("dev-a"), port=proxy.port)
    dev = MqttLink(settings, status_topic=status_topic("dev-a"))
    calls: list[tuple[str, str]] = []

    def broken() -> None:
        calls.append(("broken", threading.current_thread().name))
        raise RuntimeError("listener bug")

    def refresh_status() -> None:
        # What the daemon does: after the broker published the will, say "online" again.
        calls.append(("refresh", threading.current_thread().name))
        dev.publish_status(b'{"state":"online"}')

    dev.add_connect_listener(broken)
    dev.add_connect_listener(refresh_status)
    inbox = Inbox()
    hub = MqttLink(mqtt_broker.client_settings(HUB_CN, "hub-status"))
    hub.subscribe("lfr/v1/+/status", inbox)
    caplog.set_level(logging.ERROR, logger="agent.transport.mqtt_link")
    dev.start()
    try:
        assert dev.wait_connected(10)
        hub.start()
        assert hub.wait_connected(10)
        assert inbox.wait_for(1)
        assert inbox.messages[0] == ("lfr/v1/dev-a/status", b'{"state":"online"}')
        proxy.cut()  # the broker publishes the will
        assert inbox.wait_for(2)
        assert inbox.messages[1] == ("lfr/v1/dev-a/status", b"offline")
        proxy.restore()
        assert inbox.wait_for(3, timeout=20)
        assert inbox.messages[2] == ("lfr/v1/dev-a/status", b'{"state":"online"}')
        assert [name for name, _ in calls] == ["broken", "refresh"] * 2
        assert all(thread != threading.main_thread().name for _, thread in calls)
        assert caplog.text.count("on_connected handler failed") == 2
        assert dev.connected
    finally:
        dev.stop()
        hub.stop()
        proxy.close()


def test_missing_tls_files_are_a_one_line_error(tmp_path: Path) -> None:
    settings = MqttSettings(
        host="127.0.0.1",
        port=1,
        ca_file=tmp_path / "ca.pem",
        cert_file=tmp_path / "c.pem",
        key_file=tmp_path / "k.pem",
        client_id="x",
    )
    with pytest.raises(MqttLinkError, match="CA file"):
        MqttLink(settings)


def test_settings_come_from_the_mqtt_config_section() -> None:
    from agent.config import parse_config

    cfg = parse_config(
        {"device": {"id": "lfr-demo-01"}, "mqtt": {"host": "b.example", "port": 8884}}
    )
    s = MqttSettings.from_config(cfg.mqtt, cfg.device.id)
    assert (s.host, s.port, s.client_id, s.session_expiry_s) == (
        "b.example",
        8884,
        "lfr-demo-01",
        7 * 86400,
    )


def test_garbage_on_every_subscribed_topic_never_stops_the_link(
    mqtt_broker: MosquittoBroker,
) -> None:
    from agent.protocol.topics import ack_topic, activation_topic, watchlist_topic

    seen: list[str] = []

    def strict(topic: str, payload: bytes) -> None:
        seen.append(topic)
        if payload != b"sentinel":
            raise ValueError("malformed")  # what a verifier does with garbage

    dev = MqttLink(mqtt_broker.client_settings("dev-a"))
    for t in (activation_topic("dev-a"), watchlist_topic("dev-a"), ack_topic("dev-a")):
        dev.subscribe(t, strict)
    hub = MqttLink(mqtt_broker.client_settings(HUB_CN, "hub-fuzz"))
    dev.start()
    hub.start()
    try:
        assert dev.wait_connected(10) and hub.wait_connected(10)
        rng = random.Random(11)
        topics = [activation_topic("dev-a"), watchlist_topic("dev-a"), ack_topic("dev-a")]
        for i in range(90):
            hub.publish(topics[i % 3], rng.randbytes(rng.randrange(0, 2000)))
        for t in topics:
            hub.publish(t, b"sentinel")
        deadline = time.monotonic() + 15
        while len(seen) < 93 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(seen) == 93 and dev.connected
    finally:
        dev.stop()
        hub.stop()
