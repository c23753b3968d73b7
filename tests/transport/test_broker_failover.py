"""No alert depends on one broker process: two mosquitto brokers of one fleet, bridged
as ``configs/mosquitto/bridge.example.conf`` ships, a camera on each, and a hub worker
that lists both. The first broker is SIGKILLed mid-stream: the camera and the worker on
it move to the second, and every alert is stored exactly once and acknowledged.

The second broker's bridge is the shipped example with its addresses and files
replaced; the first broker grants the bridge's identity its rights (``lfr-hub broker
grant --bridge b``), and every client is granted on both brokers, each of which keeps its
own rules.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.alert_factory import AlertKeys, make_content

from agent.cli.hub_main import main as hub_main
from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker
from agent.hub.keys.pki import bridge_identity
from agent.hub.store.alert_store import AlertStore
from agent.transport.alert_outbox import AlertOutbox
from agent.transport.alert_publisher import AlertPublisher
from agent.transport.mqtt_link import MqttLink, MqttSettings
from hil.local_broker import HUB_CN, MosquittoBroker

pytestmark = [pytest.mark.system, pytest.mark.fault]

REPO = Path(__file__).resolve().parents[2]
BRIDGE_EXAMPLE = REPO / "configs" / "mosquitto" / "bridge.example.conf"
CAMERAS = ("lfr-fail-01", "lfr-fail-02")
PER_PHASE = 15


def bridge_config(a: MosquittoBroker, pki: Path) -> list[str]:
    """The shipped bridge example, pointed at broker ``a`` and this PKI."""
    replace = {
        "address": f"address {a.host}:{a.port}",
        "bridge_cafile": f"bridge_cafile {pki / 'ca.pem'}",
        "bridge_certfile": f"bridge_certfile {pki / 'clients' / 'bridge.b-cert.pem'}",
        "bridge_keyfile": f"bridge_keyfile {pki / 'clients' / 'bridge.b-key.pem'}",
    }
    lines = []
    for line in BRIDGE_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        lines.append(replace.get(line.split(" ", 1)[0], line))
    return lines


@pytest.fixture
def bridged_brokers(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, MosquittoBroker]]:
    a = MosquittoBroker(tmp_path / "a")
    a.client_files(bridge_identity("b"))
    b = MosquittoBroker(tmp_path / "b", pki_dir=a.pki_dir, extra_config=bridge_config(a, a.pki_dir))
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        b.stop()
        a.stop()
        shutil.rmtree(tmp_path / "a" / "data", ignore_errors=True)


def settings(
    first: MosquittoBroker, second: MosquittoBroker, cn: str, client_id: str
) -> MqttSettings:
    s = first.client_settings(cn, client_id)
    second.grant(cn)
    return MqttSettings(
        host=s.host,
        port=s.port,
        ca_file=s.ca_file,
        cert_file=s.cert_file,
        key_file=s.key_file,
        client_id=s.client_id,
        keepalive_s=s.keepalive_s,
        session_expiry_s=s.session_expiry_s,
        reconnect_min_s=s.reconnect_min_s,
        reconnect_max_s=s.reconnect_max_s,
        fallbacks=((second.host, second.port),),
    )


def wait_until(what: str, condition: object, timeout: float = 60.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_alerts_survive_the_loss_of_one_bridged_broker(
    bridged_brokers: tuple[MosquittoBroker, MosquittoBroker], tmp_path: Path, hub_db_url: str
) -> None:
    a, b = bridged_brokers
    keys = AlertKeys.generate()
    store = AlertStore(hub_db_url)
    for dev in CAMERAS:
        store.register_device_key(dev, keys.device.public_key())
    worker = HubAlertWorker(
        MqttLink(settings(a, b, HUB_CN, "hub-w1")),
        AlertReceiver(store, keys.hub),
        share_group="hubs",
    )
    # One camera starts on each broker; both know the other broker.
    cameras = []
    for dev, (first, second) in zip(CAMERAS, ((a, b), (b, a)), strict=True):
        link = MqttLink(settings(first, second, dev, dev))
        outbox = AlertOutbox(
            tmp_path / dev / "outbox",
            max_bytes=10**8,
            alarm_fraction=0.9,
            retention_s=86400,
            audit=lambda _e, _f: None,
        )
        pub = AlertPublisher(
            outbox, link, device_id=dev, device_key=keys.device, hub_key=keys.hub.public_key(),
            resend_after_s=3.0,
        )  # fmt: skip
        cameras.append((dev, link, outbox, pub))
    worker.start()
    for _dev, link, _outbox, pub in cameras:
        link.start()
        pub.start()
    try:
        assert worker.link.wait_connected(15)
        assert all(link.wait_connected(15) for _d, link, _o, _p in cameras)
        assert worker.link.endpoint == (a.host, a.port)
        sent: set[str] = set()
        for n in range(PER_PHASE):
            for dev, _link, _outbox, pub in cameras:
                sent.add(pub.submit(make_content(dev, n)).header.alert_id)
        # Alerts from the camera on broker B reach the worker on broker A over the bridge.
        wait_until("the first alerts", lambda: store.count() == len(sent))
        a.stop(kill=True)  # broker A is gone, with whatever it held
        for n in range(PER_PHASE, 2 * PER_PHASE):
            for dev, _link, _outbox, pub in cameras:
                sent.add(pub.submit(make_content(dev, n)).header.alert_id)
        wait_until("every alert stored", lambda: store.count() == len(sent), 90)
        wait_until(
            "every alert acknowledged", lambda: all(len(o) == 0 for _d, _l, o, _p in cameras), 90
        )
        assert worker.link.endpoint == (b.host, b.port)
        assert all(link.endpoint == (b.host, b.port) for _d, link, _o, _p in cameras)
        stored = {r.alert_id for r in store.list_alerts(limit=1000)}
        assert stored == sent and store.count() == 4 * PER_PHASE
        print(
            f"broker failover: {len(sent)} alerts, {store.count()} stored once; "
            f"duplicates absorbed {worker.receiver.stats.duplicates}"
        )
    finally:
        for _dev, link, _outbox, pub in cameras:
            pub.stop()
            link.stop(graceful=False)
        worker.stop()


def test_the_cli_grants_on_every_bridged_broker(
    bridged_brokers: tuple[MosquittoBroker, MosquittoBroker], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each broker keeps its own rules: ``--broker A,B`` grants and revokes on both."""
    a, b = bridged_brokers
    both = ["--broker", f"{a.host}:{a.port},{b.host}:{b.port}", "--pki-dir", str(a.pki_dir)]
    assert hub_main(["broker", "grant", "--device", "cam-both", *both]) == 0
    assert hub_main(["broker", "grant", "--bridge", "c", *both]) == 0
    for broker in (a, b):
        one = ["--broker", f"{broker.host}:{broker.port}", "--pki-dir", str(a.pki_dir)]
        capsys.readouterr()
        assert hub_main(["broker", "list", *one]) == 0
        out = capsys.readouterr().out
        assert "cam-both" in out and "bridge.c" in out and "lfr-bridge" in out
    assert hub_main(["broker", "revoke", "--device", "cam-both", *both]) == 0
    assert capsys.readouterr().out.count("rights removed") == 2
    assert hub_main(["broker", "grant", "--bridge", "c", "--role", "intake", *both]) == 2
