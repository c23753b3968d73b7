"""lfr-hub alerts watch|list|show|adjudicate|purge, as an operator runs them."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.alert_factory import AlertKeys, make_content
from support.mosquitto_broker import HUB_CN, MosquittoBroker

from agent.cli.hub_main import main as hub_main
from agent.hub.intake.alert_receiver import AlertReceiver
from agent.hub.store.alert_store import AlertStore
from agent.protocol.topics import alert_topic
from agent.transport.alert_outbox import AlertOutbox
from agent.transport.alert_publisher import AlertPublisher
from agent.transport.mqtt_link import MqttLink
from agent.trust.alert_envelope import open_alert, seal_alert
from agent.trust.key_files import write_private_key

DEV = "lfr-test-01"
KEYS = AlertKeys.generate()


def filled_db(path: str | Path, n: int = 3) -> list[str]:
    store = AlertStore(path)
    store.register_device_key(DEV, KEYS.device.public_key())
    receiver = AlertReceiver(store, KEYS.hub)
    ids = []
    for i in range(1, n + 1):
        sealed = seal_alert(
            make_content(DEV, i, scene=True),
            seq=i,
            device_key=KEYS.device,
            hub_key=KEYS.hub.public_key(),
        )
        assert receiver.receive(alert_topic(DEV), sealed.envelope).outcome == "stored"
        ids.append(sealed.header.alert_id)
    store.close()
    return ids


def test_list_show_adjudicate_purge(
    tmp_path: Path, hub_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = hub_db_url
    ids = filled_db(db)
    assert hub_main(["alerts", "list", "--db", db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(DEV in line and "open" in line for line in out)

    image = tmp_path / "probe.jpg"
    assert hub_main(["alerts", "show", ids[0][:10], "--db", db, "--image", str(image)]) == 0
    assert image.read_bytes() == make_content(DEV, 1).probe_jpeg
    assert stat.S_IMODE(image.stat().st_mode) == 0o600
    assert "W-0001" in capsys.readouterr().out

    args = ["alerts", "adjudicate", ids[0], "--db", db]
    assert hub_main([*args, "--outcome", "false-alert", "--by", "PC 1234"]) == 0
    assert "false-alert by PC 1234" in capsys.readouterr().out
    assert hub_main(["alerts", "list", "--db", db, "--open", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["alert_id"] for r in rows) == sorted(ids[1:])

    assert hub_main(["alerts", "purge", "--db", db, "--older-than", "1d"]) == 0
    assert "purged 0" in capsys.readouterr().out
    time.sleep(0.01)
    assert hub_main(["alerts", "purge", "--db", db, "--older-than", "0m"]) == 0
    assert "purged 3" in capsys.readouterr().out


def test_purges_are_recorded_and_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "alerts.db")
    ids = filled_db(tmp_path / "alerts.db", 2)
    time.sleep(0.01)
    assert hub_main(["alerts", "purge", "--db", db, "--older-than", "0m"]) == 0
    line = capsys.readouterr().out.strip()
    assert "purge 1: purged 2 alerts" in line and line.endswith("by alerts purge")
    assert hub_main(["alerts", "purge", "--db", db]) == 0
    assert "purge 2: purged 0 alerts received more than 31 days ago" in capsys.readouterr().out
    assert hub_main(["alerts", "purges", "--db", db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [("purge 2:" in out[0]), ("purge 1:" in out[1])] == [True, True] and len(out) == 2
    assert hub_main(["alerts", "purges", "--db", db, "--json", "--limit", "1"]) == 0
    (record,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (record["purge_id"], record["alerts"], record["older_than_days"]) == (2, 0, 31)
    # The record names no alert and holds nothing about a face.
    assert not any(i in json.dumps(record) for i in ids)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["alerts", "show", "zz"], 2, "6–32 hex digits"),
        (["alerts", "show", "abcdef0123"], 3, "not in"),
    ],
)
def test_bad_alert_ids_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    filled_db(tmp_path / "a.db", 1)
    assert hub_main([*argv, "--db", str(tmp_path / "a.db")]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["alerts", "adjudicate", "abcdef", "--outcome", "maybe", "--by", "x"], "invalid choice"),
        (["alerts", "purge", "--older-than", "soon"], "use a number and d, h or m"),
        (["alerts", "list", "--db", "mysql://hub:pw@db/lfr"], "only a file path"),
        (["reports", "list", "--db", "sqlite://"], "in-memory"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        hub_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.system
def test_watch_stores_prints_and_acks(
    mqtt_broker: MosquittoBroker, tmp_path: Path, hub_db_url: str
) -> None:
    db = hub_db_url
    store = AlertStore(db)
    store.register_device_key(DEV, KEYS.device.public_key())
    # Received 40 days ago: the watch's retention purge at start removes it.
    old = seal_alert(
        make_content(DEV, 99), seq=99, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
    )
    opened = open_alert(
        old.envelope, sender=DEV, device_key=KEYS.device.public_key(), hub_key=KEYS.hub
    )
    store.store_alert(opened, received_at=time.time() - 40 * 86400)
    store.close()
    write_private_key(tmp_path / "hub-alert-key.pem", KEYS.hub)
    ca, cert, key = mqtt_broker.client_files(HUB_CN)
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.cli.hub_main",
            "alerts",
            "watch",
            "--db",
            str(db),
            "--broker",
            f"127.0.0.1:{mqtt_broker.port}",
            "--ca",
            str(ca),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--alert-key",
            str(tmp_path / "hub-alert-key.pem"),
            "--group",
            "hubs",
            "--json",
            "--count",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    box = AlertOutbox(
        tmp_path / "outbox",
        max_bytes=10**7,
        alarm_fraction=0.9,
        retention_s=86400,
        audit=lambda e, f: None,
    )
    link = MqttLink(mqtt_broker.client_settings(DEV))
    pub = AlertPublisher(
        box,
        link,
        device_id=DEV,
        device_key=KEYS.device,
        hub_key=KEYS.hub.public_key(),
        resend_after_s=1.0,
    )
    link.start()
    pub.start()
    try:
        ids = [pub.submit(make_content(DEV, i)).header.alert_id for i in range(3)]
        out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
        printed = [json.loads(line) for line in out.splitlines()]
        assert sorted(p["alert_id"] for p in printed) == sorted(ids)
        assert all(p["device"] == DEV and p["outcome"] is None for p in printed)
        assert "purged 1 alerts received more than 31 days ago" in err
        assert "by alerts watch hub.main" in err
        store = AlertStore(db)
        assert [(r.alerts, r.by_ref) for r in store.purge_log()] == [(1, "alerts watch hub.main")]
        assert store.is_purged(old.header.alert_id) and store.count() == 3
        store.close()
        deadline = time.monotonic() + 20
        while len(box) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(box) == 0  # every alert acknowledged after the hub stored it
    finally:
        if watch.poll() is None:
            watch.kill()
        pub.stop()
        link.stop()


def test_watch_with_missing_tls_files_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_private_key(tmp_path / "alert.pem", KEYS.hub)
    argv = ["alerts", "watch", "--alert-key", str(tmp_path / "alert.pem")]
    argv += ["--db", str(tmp_path / "db" / "a.db"), "--ca", str(tmp_path / "none.pem")]
    assert hub_main(argv) == 3
    err = capsys.readouterr().err
    assert "mqtt: CA file" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "db").exists()  # nothing created before the inputs checked out
