"""1,000 alerts through broker restarts, a network cut, forged acknowledgements, a SIGKILLed
sender, a hub restart and torn outbox writes: the hub must end with every committed alert
exactly once.

The sender is a separate process (tests/support/alert_sender.py) talking to the broker
through a relay that can cut the link; the hub worker runs in this process against the
broker directly. Counts are printed for the record (run with -s to see them).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.alert_factory import AlertKeys, make_content
from support.mosquitto_broker import HUB_CN, MosquittoBroker
from support.tcp_cut_proxy import TcpCutProxy

from agent.hub.alert_receiver import AlertReceiver, HubAlertWorker, ReceiverStats
from agent.hub.alert_store import AlertStore
from agent.transport.alert_outbox import encode_entry
from agent.transport.mqtt_link import MqttLink, PublishResult
from agent.transport.topics import ack_topic, alert_topic
from agent.trust.alert_envelope import encode_ack, seal_alert
from agent.trust.key_files import write_private_key, write_public_key

pytestmark = [pytest.mark.system, pytest.mark.fault, pytest.mark.slow]

DEV = "lfr-fault-01"
ROGUE = "lfr-fault-02"
TOTAL = 1000
SENDER = Path(__file__).resolve().parents[1] / "support" / "alert_sender.py"


class Sender:
    def __init__(self, state: Path, proxy: TcpCutProxy, pki: Path) -> None:
        self.state, self.proxy, self.pki = state, proxy, pki
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        args = [str(self.state), "127.0.0.1", str(self.proxy.port), str(self.pki), DEV, str(TOTAL)]
        self.proc = subprocess.Popen([sys.executable, str(SENDER), *args])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def forged_acks_ignored(self) -> int:
        """Acks the sender processes refused, summed over its runs (from sender.log)."""
        last: dict[str, int] = {}
        path = self.state / "sender.log"
        for line in path.read_text().splitlines() if path.exists() else []:
            m = re.search(r" (\d+) INFO .*forged_acks=(\d+)$", line)
            if m:
                last[m.group(1)] = int(m.group(2))
        return sum(last.values())

    def committed(self) -> list[str]:
        path = self.state / "committed.log"
        return path.read_text().split() if path.exists() else []

    def wait_committed(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.committed()) < n:
            assert self.proc is not None and self.proc.poll() is None, "sender died"
            assert time.monotonic() < deadline, f"stuck at {len(self.committed())} alerts"
            time.sleep(0.02)


def _hub(broker: MosquittoBroker, store: AlertStore, keys: AlertKeys) -> HubAlertWorker:
    worker = HubAlertWorker(
        MqttLink(broker.client_settings(HUB_CN, "hub-fault-1")), AlertReceiver(store, keys.hub)
    )
    worker.start()
    assert worker.link.wait_connected(15)
    return worker


def _add(total: ReceiverStats, part: ReceiverStats) -> None:
    total.received += part.received
    total.stored += part.stored
    total.duplicates += part.duplicates
    total.rejected += part.rejected


def _torn_writes(outbox: Path, keys: AlertKeys) -> list[str]:
    """What a power cut during a write leaves: a partial temporary file and, on a
    filesystem that reordered the rename, a truncated entry. Both are new alerts that
    were never committed, so they must never reach the hub."""
    seqs = [int(p.name.split("-")[0]) for p in outbox.glob("*.alert")] or [
        int((outbox / "sequence").read_text())
    ]
    torn_ids = []
    for i, name_fmt in enumerate((".tmp-{seq:020d}-{aid}.alert", "{seq:020d}-{aid}.alert")):
        seq = max(seqs) + 1000 + i
        sealed = seal_alert(
            make_content(DEV, 99_000 + i),
            seq=seq,
            device_key=keys.device,
            hub_key=keys.hub.public_key(),
        )
        data = encode_entry(
            sealed.header.alert_id, seq, sealed.envelope, time.time(), sealed.ack_secret
        )
        name = name_fmt.format(seq=seq, aid=sealed.header.alert_id)
        (outbox / name).write_bytes(data[: len(data) * 2 // 3])
        torn_ids.append(sealed.header.alert_id)
    return torn_ids


def _forge_acks(broker: MosquittoBroker, alert_ids: list[str]) -> None:
    """Acks for ``alert_ids`` with random secrets, and in the id-only earlier format,
    sent with the camera's own certificate (which the ACL lets write its ack topic)."""
    forger = MqttLink(broker.client_settings(DEV, "forger"))
    forger.start()
    try:
        assert forger.wait_connected(10)
        results: list[PublishResult] = []
        for payload in (
            encode_ack([(aid, os.urandom(16)) for aid in alert_ids]),
            json.dumps({"ack": alert_ids}).encode(),
        ):
            forger.publish(ack_topic(DEV), payload, on_result=results.append)
        deadline = time.monotonic() + 15
        while len(results) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(results) == 2 and all(r.ok for r in results)
    finally:
        forger.stop()


def _rogue_messages(keys: AlertKeys) -> list[bytes]:
    """Envelopes a second, enrolled device sends on its own topic: copies of the first
    device's alerts (replays across devices), tampered copies, and garbage."""
    out = []
    for i in range(5):
        env = seal_alert(
            make_content(DEV, 50_000 + i),
            seq=50_000 + i,
            device_key=keys.device,
            hub_key=keys.hub.public_key(),
        ).envelope
        out.append(env)
        tampered = bytearray(env)
        tampered[len(tampered) // 2] ^= 0x01
        out.append(bytes(tampered))
        out.append(os.urandom(64 + 100 * i))
    return out


def test_every_alert_arrives_exactly_once_through_faults(
    mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    keys = AlertKeys.generate()
    state = tmp_path / "device"
    write_private_key(state / "device-key.pem", keys.device)
    write_public_key(state / "hub-alert-pub.pem", keys.hub.public_key())
    mqtt_broker.client_files(DEV)
    store = AlertStore(tmp_path / "hub.db")
    store.register_device_key(DEV, keys.device.public_key())
    rogue_keys = AlertKeys.generate()
    store.register_device_key(ROGUE, rogue_keys.device.public_key())
    rogue = MqttLink(mqtt_broker.client_settings(ROGUE))
    rogue_messages = _rogue_messages(keys)
    stats = ReceiverStats()
    proxy = TcpCutProxy(mqtt_broker.port)
    hub = _hub(mqtt_broker, store, keys)
    sender = Sender(state, proxy, mqtt_broker.pki_dir)
    faults: list[str] = []
    torn: list[str] = []
    t0 = time.monotonic()
    sender.start()
    try:
        sender.wait_committed(150)
        mqtt_broker.restart()  # clean restart: persisted sessions and queues survive
        faults.append("broker restart (SIGTERM)")

        sender.wait_committed(350)
        proxy.cut()
        time.sleep(3)
        proxy.restore()
        faults.append("network cut 3 s")

        rogue.start()
        assert rogue.wait_connected(10)
        acked: list[PublishResult] = []
        for message in rogue_messages:
            rogue.publish(alert_topic(ROGUE), message, on_result=acked.append)
        deadline = time.monotonic() + 15
        while len(acked) < len(rogue_messages) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(r.ok for r in acked) and len(acked) == len(rogue_messages)
        rogue.stop()
        faults.append(f"{len(rogue_messages)} replayed/tampered/garbage envelopes")

        sender.wait_committed(550)
        sender.kill()
        torn = _torn_writes(state / "outbox", keys)
        sender.start()
        faults.append("sender SIGKILL + torn outbox writes")

        sender.wait_committed(700)
        hub.stop()
        _add(stats, hub.receiver.stats)
        faults.append("hub worker stop")
        # While the hub is down, someone holding the camera's certificate acks the newest
        # alerts, which the hub has not stored, without their secrets. The sender cannot
        # finish before the hub is back, so it is there to receive them.
        newest = sender.committed()[-40:]
        _forge_acks(mqtt_broker, newest)
        deadline = time.monotonic() + 60
        while sender.forged_acks_ignored() < 1:
            assert sender.proc is not None and sender.proc.poll() is None, "sender exited"
            assert time.monotonic() < deadline, "the forged acks never reached the camera"
            time.sleep(0.05)
        faults.append(f"forged acks for {len(newest)} alerts")
        # The copies queued for the hub were only in broker memory: after this crash the
        # outbox is the only copy, so an alert a forged ack had deleted would be lost.
        mqtt_broker.restart(kill=True)
        faults.append("broker crash (SIGKILL)")

        sender.wait_committed(850)
        hub = _hub(mqtt_broker, store, keys)
        faults.append("hub worker restart")

        assert sender.proc is not None
        rc = sender.proc.wait(timeout=150)
        assert rc == 0, (state / "sender.log").read_text()[-3000:]
        time.sleep(0.5)  # let any copies still in flight reach the hub
    finally:
        if sender.proc is not None and sender.proc.poll() is None:
            sender.kill()
        hub.stop()
        proxy.close()
    _add(stats, hub.receiver.stats)

    committed = sender.committed()
    stored = {r.alert_id for r in store.list_alerts(limit=10 * TOTAL)}
    elapsed = time.monotonic() - t0
    forged_ignored = sender.forged_acks_ignored()
    print(
        f"\nfault test: sent(committed)={len(committed)} stored={store.count()} "
        f"received={stats.received} duplicates_suppressed={stats.duplicates} "
        f"rejected={stats.rejected} torn_entries={len(torn)} forged_acks_ignored={forged_ignored} "
        f"sender_starts={sender.starts} faults={faults} elapsed={elapsed:.1f}s"
    )
    assert len(committed) == TOTAL and len(set(committed)) == TOTAL
    # Every committed alert is at the hub, once (the primary key forbids a second row).
    assert set(committed) <= stored
    # A SIGKILL can land after an alert was durably stored but before the sender logged
    # it; such an alert is still delivered. Nothing else may appear, torn ones never.
    assert len(stored - set(committed)) <= sender.starts - 1
    assert not stored & set(torn)
    # The forged acks reached the camera and were refused (the alerts they named are all
    # at the hub, checked above).
    assert forged_ignored >= 1
    assert stats.stored == store.count()
    assert stats.rejected == len(rogue_messages)
    assert not list((state / "outbox").glob("*.alert"))
    assert len(list((state / "outbox" / "quarantine").glob("*.alert"))) == 1
    assert (os.stat(tmp_path / "hub.db").st_size) > 0
