"""The hub's alert store, on SQLite and on PostgreSQL alike (``hub_db_url`` runs each test
once per backend): exactly-once storage, duplicates and conflicts, adjudication history,
retention with tombstones, device keys."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, inspect, select
from support.alert_factory import FAKE_JPEG, AlertKeys, make_content

from agent.errors import UsageError
from agent.hub.store.alert_store import AlertStore, AlertStoreError, StoreResult
from agent.hub.store.alert_tables import adjudications, alerts, crops, purged_alerts
from agent.hub.store.database import HubDatabase, StoreError
from agent.trust.alert_envelope import OpenedAlert, open_alert, seal_alert

KEYS = AlertKeys.generate()
DEV = "lfr-test-01"


def opened(
    seq: int,
    device: str = DEV,
    alert_id: str | None = None,
    jpeg: bytes = FAKE_JPEG,
    signer: Ed25519PrivateKey = KEYS.device,
) -> OpenedAlert:
    sealed = seal_alert(
        make_content(device, seq, scene=True, jpeg=jpeg),
        seq=seq,
        device_key=signer,
        hub_key=KEYS.hub.public_key(),
        alert_id=alert_id,
    )
    return open_alert(
        sealed.envelope, sender=device, device_key=signer.public_key(), hub_key=KEYS.hub
    )


def reencoded(alert: OpenedAlert, envelope: bytes, signer: Ed25519PrivateKey) -> OpenedAlert:
    """The same signed alert in other envelope bytes (indented JSON, keys reversed)."""
    doc = json.loads(envelope)
    again = json.dumps(dict(reversed(list(doc.items()))), indent=2).encode()
    assert again != envelope
    copy = open_alert(
        again, sender=alert.header.device, device_key=signer.public_key(), hub_key=KEYS.hub
    )
    assert copy.envelope_sha256 != alert.envelope_sha256
    return copy


@pytest.fixture
def store(hub_db_url: str) -> AlertStore:
    return AlertStore(hub_db_url)


def test_store_once_then_duplicate_then_conflicts(store: AlertStore, hub_db_url: str) -> None:
    a = opened(1)
    assert store.store_alert(a) is StoreResult.STORED
    assert store.store_alert(a) is StoreResult.DUPLICATE
    # Same id, other signed content (a re-sealed copy): refused.
    assert store.store_alert(opened(2, alert_id=a.header.alert_id)) is StoreResult.CONFLICT
    # Same device sequence number under a new id: refused.
    assert store.store_alert(opened(1)) is StoreResult.CONFLICT
    assert store.count() == 1
    assert store.crop(a.header.alert_id, "probe") == a.content.probe_jpeg
    assert store.crop(a.header.alert_id, "scene") == a.content.scene_jpeg
    # The ack secret is kept with the alert, so every later copy can be acknowledged.
    assert a.ack_secret is not None
    assert AlertStore(hub_db_url).ack_secret(a.header.alert_id) == a.ack_secret
    assert store.ack_secret("0" * 32) is None


def test_a_re_encoded_resend_of_the_same_signed_alert_is_a_duplicate(store: AlertStore) -> None:
    sealed = seal_alert(
        make_content(DEV, 1), seq=1, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
    )
    first = open_alert(
        sealed.envelope, sender=DEV, device_key=KEYS.device.public_key(), hub_key=KEYS.hub
    )
    assert store.store_alert(first) is StoreResult.STORED
    copy = reencoded(first, sealed.envelope, KEYS.device)
    assert copy.signed_sha256 == first.signed_sha256
    assert store.store_alert(copy) is StoreResult.DUPLICATE
    # Still a duplicate once purged: the tombstone keeps the signed digest.
    time.sleep(0.01)
    assert store.purge_older_than(0) == 1
    assert store.store_alert(copy) is StoreResult.DUPLICATE
    assert store.count() == 0


def test_another_cameras_alert_id_cannot_block_the_genuine_alert(store: AlertStore) -> None:
    squatter_key = Ed25519PrivateKey.generate()
    store.register_device_key(DEV, KEYS.device.public_key())
    store.register_device_key("lfr-test-02", squatter_key.public_key())
    genuine = opened(1)
    # A stolen camera learnt the id (or guessed it) and sends it first, under its own name.
    squat = opened(1, device="lfr-test-02", alert_id=genuine.header.alert_id, signer=squatter_key)
    assert store.store_alert(squat) is StoreResult.STORED
    assert store.store_alert(genuine) is StoreResult.STORED
    assert store.store_alert(genuine) is StoreResult.DUPLICATE
    assert store.count() == 2
    alert_id = genuine.header.alert_id
    with pytest.raises(UsageError, match="several cameras"):
        store.get(alert_id)
    mine = store.get(alert_id, device_id=DEV)
    assert (mine.device_id, mine.watchlist_entry) == (DEV, genuine.content.watchlist_entry)
    assert store.ack_secret(alert_id, device_id=DEV) == genuine.ack_secret
    assert store.ack_secret(alert_id, device_id="lfr-test-02") == squat.ack_secret
    assert store.ack_secret(alert_id) is None  # ambiguous: never the wrong camera's
    assert store.crop(alert_id, device_id=DEV) == genuine.content.probe_jpeg
    with pytest.raises(UsageError, match="several cameras"):
        store.crop(alert_id)
    row = store.adjudicate(alert_id, "false-alert", "PC 1", device_id=DEV)
    assert row.row_id == mine.row_id and row.outcome == "false-alert"
    assert store.get(alert_id, device_id="lfr-test-02").outcome is None


def test_alert_without_ack_secret_is_stored(store: AlertStore) -> None:
    a = opened(1)
    assert store.store_alert(a) is StoreResult.STORED
    legacy = dataclasses.replace(opened(2), ack_secret=None)
    assert store.store_alert(legacy) is StoreResult.STORED
    assert store.ack_secret(legacy.header.alert_id) is None
    assert store.ack_secret(a.header.alert_id) == a.ack_secret
    assert {r.seq for r in store.list_alerts()} == {1, 2}


def test_workers_racing_store_each_alert_once(hub_db_url: str) -> None:
    AlertStore(hub_db_url).close()  # the schema exists before the race starts
    alerts_in = [opened(i) for i in range(1, 41)]
    results: list[StoreResult] = []
    lock = threading.Lock()
    start = threading.Barrier(3)

    def worker() -> None:
        store = AlertStore(hub_db_url)  # its own engine and connections, like a process
        start.wait()
        for a in alerts_in:
            r = store.store_alert(a)
            with lock:
                results.append(r)
        store.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(StoreResult.STORED) == 40
    assert results.count(StoreResult.DUPLICATE) == 80
    store = AlertStore(hub_db_url)
    assert store.count() == 40
    with store.database.read() as db:
        assert db.scalar(select(func.count()).select_from(crops)) == 80  # probe + scene


def test_adjudication_history_and_lookup_by_prefix(store: AlertStore) -> None:
    a = opened(1)
    store.store_alert(a)
    row = store.adjudicate(a.header.alert_id[:8], "false-alert", "PC 1234")
    assert (row.outcome, row.outcome_by) == ("false-alert", "PC 1234")
    row = store.adjudicate(a.header.alert_id.upper(), "confirmed-false", "Sgt 99")
    assert row.outcome == "confirmed-false"
    history = store.adjudication_history(row.row_id)
    assert [(o, by) for o, by, _at in history] == [
        ("false-alert", "PC 1234"),
        ("confirmed-false", "Sgt 99"),
    ]
    assert history[0][2] <= history[1][2]
    assert store.list_alerts(unadjudicated=True) == []
    assert store.get_row(row.row_id) == row
    with pytest.raises(UsageError, match="outcome"):
        store.adjudicate(a.header.alert_id, "maybe", "x")
    with pytest.raises(UsageError, match="--by"):
        store.adjudicate(a.header.alert_id, "true-alert", "  ")
    with pytest.raises(UsageError):
        store.get("zz")
    with pytest.raises(AlertStoreError, match="not in"):
        store.get("0" * 32)
    with pytest.raises(AlertStoreError, match="not in"):
        store.get_row(row.row_id + 1000)


def test_list_alerts_filters_and_orders(store: AlertStore) -> None:
    now = time.time()
    for seq in (1, 2, 3):
        store.store_alert(opened(seq), received_at=now + seq)
    other_key = Ed25519PrivateKey.generate()
    store.store_alert(opened(1, device="lfr-test-02", signer=other_key), received_at=now + 9)
    assert [r.seq for r in store.list_alerts(device_id=DEV)] == [3, 2, 1]
    assert [r.device_id for r in store.list_alerts(limit=1)] == ["lfr-test-02"]
    first = store.list_alerts(device_id=DEV)[-1]
    store.adjudicate(first.alert_id, "true-alert", "PC 1")
    assert [r.seq for r in store.list_alerts(device_id=DEV, unadjudicated=True)] == [3, 2]


def test_purge_removes_old_alerts_with_their_crops_and_outcomes(store: AlertStore) -> None:
    old, new = opened(1), opened(2)
    store.store_alert(old, received_at=time.time() - 40 * 86400)
    store.store_alert(new)
    store.adjudicate(old.header.alert_id, "false-alert", "PC 1")
    events: list[tuple[str, dict[str, object]]] = []
    assert store.purge_older_than(31 * 86400, lambda e, f: events.append((e, f))) == 1
    assert [r.alert_id for r in store.list_alerts()] == [new.header.alert_id]
    assert store.crop(old.header.alert_id) is None
    assert events == [("hub.alert_purged", {"alert_id": old.header.alert_id})]
    with store.database.read() as db:
        assert db.scalar(select(func.count()).select_from(adjudications)) == 0
        assert db.scalar(select(func.count()).select_from(crops)) == 2  # the new alert's


def test_purge_leaves_a_tombstone_so_a_late_redelivery_is_a_duplicate(
    store: AlertStore, hub_db_url: str
) -> None:
    old, new = opened(1), opened(2)
    store.store_alert(old, received_at=time.time() - 40 * 86400)
    store.store_alert(new)
    assert store.purge_older_than(31 * 86400) == 1
    # The camera never got its ack and sends the same alert again, after the purge.
    assert store.store_alert(old) is StoreResult.DUPLICATE
    assert store.count() == 1 and store.crop(old.header.alert_id) is None
    assert store.is_purged(old.header.alert_id) and not store.is_purged(new.header.alert_id)
    assert store.is_purged(old.header.alert_id, device_id=DEV)
    assert not store.is_purged(old.header.alert_id, device_id="lfr-test-02")
    # The ack proof survives in the tombstone, so the duplicate can be acknowledged.
    assert store.ack_secret(old.header.alert_id) == old.ack_secret
    # Other content under the purged id, or the purged (device, seq) under a new id: refused.
    assert store.store_alert(opened(3, alert_id=old.header.alert_id)) is StoreResult.CONFLICT
    assert store.store_alert(opened(1)) is StoreResult.CONFLICT
    store.close()
    reopened = AlertStore(hub_db_url)
    assert reopened.store_alert(old) is StoreResult.DUPLICATE  # kept across restarts
    assert reopened.count() == 1


def test_tombstones_hold_no_content(store: AlertStore) -> None:
    store.store_alert(opened(1), received_at=time.time() - 40 * 86400)
    store.adjudicate(store.list_alerts()[0].alert_id, "true-alert", "PC 1")
    store.purge_older_than(31 * 86400)
    columns = {c["name"] for c in inspect(store.database.engine).get_columns("purged_alerts")}
    assert columns == {
        "id",
        "alert_id",
        "device_id",
        "key_id",
        "seq",
        "envelope_sha256",
        "signed_sha256",
        "ack_secret",
        "purge_id",
    }
    with store.database.read() as db:
        assert db.scalar(select(func.count()).select_from(purged_alerts)) == 1
        for table in (alerts, crops, adjudications):
            assert db.scalar(select(func.count()).select_from(table)) == 0


def test_every_purge_run_is_recorded(store: AlertStore, hub_db_url: str) -> None:
    for seq in (1, 2):
        store.store_alert(opened(seq), received_at=time.time() - 40 * 86400)
    store.store_alert(opened(3))
    first = store.purge(31 * 86400, by_ref="alerts watch hub-main-1")
    second = store.purge(31 * 86400)
    assert (first.alerts, first.by_ref) == (2, "alerts watch hub-main-1")
    assert (second.alerts, second.by_ref) == (0, "alerts purge")
    assert first.cutoff == pytest.approx(first.at - 31 * 86400)
    assert AlertStore(hub_db_url).purge_log() == [second, first]
    assert AlertStore(hub_db_url).purge_log(limit=1) == [second]


def test_a_re_keyed_device_starts_its_sequence_again(store: AlertStore) -> None:
    store.register_device_key(DEV, KEYS.device.public_key())
    old = [opened(seq) for seq in (1, 2, 3)]
    for a in old[:2]:
        store.store_alert(a, received_at=time.time() - 40 * 86400)
    store.store_alert(old[2])
    assert store.purge_older_than(31 * 86400) == 2  # seq 1 and 2 are tombstones now
    # The board is re-flashed: new key, sequence from 1 again, approved with --replace.
    reflashed = Ed25519PrivateKey.generate()
    store.register_device_key(DEV, reflashed.public_key())
    new = [opened(seq, signer=reflashed) for seq in (1, 2, 3)]
    for a in new:
        assert store.store_alert(a) is StoreResult.STORED
        assert store.ack_secret(a.header.alert_id) == a.ack_secret
    assert store.count() == 4
    # Replays of the old key's envelopes are still duplicates, purged or not.
    for a in old:
        assert store.store_alert(a, key=KEYS.device.public_key()) is StoreResult.DUPLICATE
    # Within one key a sequence number is still taken once.
    assert store.store_alert(opened(2, signer=reflashed)) is StoreResult.CONFLICT
    assert store.store_alert(opened(3), key=KEYS.device.public_key()) is StoreResult.CONFLICT
    assert store.store_alert(opened(1), key=KEYS.device.public_key()) is StoreResult.CONFLICT


def test_device_key_registry(store: AlertStore, hub_db_url: str) -> None:
    assert store.device_key("d1") is None
    k1, k2 = Ed25519PrivateKey.generate().public_key(), Ed25519PrivateKey.generate().public_key()
    store.register_device_key("d1", k1)
    assert store.device_key("d1") == k1
    store.register_device_key("d1", k2)
    assert AlertStore(hub_db_url).device_key("d1") == k2


def test_unopenable_sqlite_file_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "x.db").mkdir()
    with pytest.raises(AlertStoreError, match="cannot open") as err:
        AlertStore(tmp_path / "x.db")
    assert "\n" not in str(err.value) and "x.db" in str(err.value)


def test_unreachable_postgresql_is_a_one_line_error_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://hub:s3cret@/lfr?host={tmp_path}"  # no server on this socket
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot open") as err:
        HubDatabase(url, connect_wait_s=1.0)
    assert time.monotonic() - started < 10  # it waited about a second for the server
    assert "\n" not in str(err.value) and "s3cret" not in str(err.value)
    assert "No such file or directory" in str(err.value) or "failed" in str(err.value)
