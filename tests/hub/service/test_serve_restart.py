"""``lfr-hub serve`` killed (SIGKILL) while a camera is sending alerts, then started
again: every alert is stored exactly once and acknowledged. The camera side re-sends
what was not acknowledged, as the device's outbox does; the hub's broker session
keeps what arrived while the service was down. Real mosquitto, real service process."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.alert_factory import AlertKeys, make_content
from support.hub_console import BrokerLink, make_hub
from support.mosquitto_broker import HUB_CN, MosquittoBroker

from agent.hub.store.alert_store import AlertStore
from agent.protocol.topics import ack_topic, alert_topic
from agent.transport.mqtt_link import MqttLink
from agent.trust.alert_envelope import decode_ack, seal_alert
from agent.trust.key_files import write_private_key

pytestmark = [pytest.mark.system, pytest.mark.fault, pytest.mark.slow]

DEV = "lfr-test-01"
KEYS = AlertKeys.generate()
ALERTS = 30


def wait_until(what: str, condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_sigkill_and_restart_lose_and_duplicate_nothing(
    tmp_path: Path, mqtt_broker: MosquittoBroker
) -> None:
    mqtt_broker.client_settings(HUB_CN)
    alert_key = tmp_path / "hub-alert-key.pem"
    write_private_key(alert_key, KEYS.hub)
    hub = make_hub(
        tmp_path / "hub",
        broker=BrokerLink(f"127.0.0.1:{mqtt_broker.port}", mqtt_broker.pki_dir, alert_key),
    )
    store = AlertStore(str(hub.db_path))
    store.register_device_key(DEV, KEYS.device.public_key())

    envelopes = {}
    for n in range(1, ALERTS + 1):
        sealed = seal_alert(
            make_content(DEV, n), seq=n, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
        )
        envelopes[sealed.header.alert_id] = sealed.envelope
    acked: set[str] = set()
    lock = threading.Lock()

    def on_ack(_topic: str, payload: bytes) -> None:
        with lock:
            acked.update(alert_id for alert_id, _secret in decode_ack(payload))

    camera = MqttLink(mqtt_broker.client_settings(DEV))
    camera.subscribe(ack_topic(DEV), on_ack)
    camera.start()
    assert camera.wait_connected(10)
    command = [sys.executable, "-m", "agent.cli.hub_main", "serve", "--config", str(hub.config)]
    serve = subprocess.Popen(command)
    stop_sending = threading.Event()

    def send_all() -> None:
        # Like the device's outbox: send in order, then re-send what is unacknowledged.
        while not stop_sending.is_set():
            with lock:
                pending = [a for a in envelopes if a not in acked]
            if not pending:
                return
            for alert_id in pending:
                camera.publish(alert_topic(DEV), envelopes[alert_id])
                time.sleep(0.05)
            stop_sending.wait(2.0)

    sender = threading.Thread(target=send_all, daemon=True)
    try:
        sender.start()
        wait_until("some alerts stored", lambda: store.count() >= 5, 60)
        serve.send_signal(signal.SIGKILL)
        serve.wait(10)
        killed_at = store.count()
        time.sleep(2.0)  # alerts keep coming while the hub is down
        serve = subprocess.Popen(command)
        wait_until("every alert acknowledged", lambda: len(acked) == ALERTS, 120)
        assert store.count() == ALERTS
        stored = {r.alert_id for r in store.list_alerts(limit=1000)}
        assert stored == set(envelopes)
        print(f"killed with {killed_at} of {ALERTS} stored; after restart {store.count()}")
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
    finally:
        stop_sending.set()
        camera.stop()
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        store.close()
