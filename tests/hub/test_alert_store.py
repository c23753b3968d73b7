"""The hub's SQLite alert store: exactly-once storage, adjudication, retention."""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.alert_factory import FAKE_JPEG, AlertKeys, make_content

from agent.errors import UsageError
from agent.hub.alert_store import AlertStore, AlertStoreError, StoreResult
from agent.trust.alert_envelope import OpenedAlert, open_alert, seal_alert

KEYS = AlertKeys.generate()


def opened(
    seq: int,
    device: str = "lfr-test-01",
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


def test_store_once_then_duplicate_then_conflicts(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    a = opened(1)
    assert store.store_alert(a) is StoreResult.STORED
    assert store.store_alert(a) is StoreResult.DUPLICATE
    # Same id, other bytes (a re-sealed copy): refused.
    assert store.store_alert(opened(2, alert_id=a.header.alert_id)) is StoreResult.CONFLICT
    # Same device sequence number under a new id: refused.
    assert store.store_alert(opened(1)) is StoreResult.CONFLICT
    assert store.count() == 1
    assert stat.S_IMODE((tmp_path / "a.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a.db-wal").stat().st_mode) == 0o600
    assert store.crop(a.header.alert_id, "probe") == a.content.probe_jpeg
    assert store.crop(a.header.alert_id, "scene") == a.content.scene_jpeg
    # The ack secret is kept with the alert, so every later copy can be acknowledged.
    assert a.ack_secret is not None
    assert AlertStore(tmp_path / "a.db").ack_secret(a.header.alert_id) == a.ack_secret
    assert store.ack_secret("0" * 32) is None


def test_alert_without_ack_secret_is_stored_and_older_databases_gain_the_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    store = AlertStore(path)
    store.close()
    # A database made before the ack_secret column existed.
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE alerts DROP COLUMN ack_secret")
    db.commit()
    db.close()
    store = AlertStore(path)
    a = opened(1)
    assert store.store_alert(a) is StoreResult.STORED
    assert store.ack_secret(a.header.alert_id) == a.ack_secret
    legacy = dataclasses.replace(opened(2), ack_secret=None)
    assert store.store_alert(legacy) is StoreResult.STORED
    assert store.ack_secret(legacy.header.alert_id) is None
    assert {r.seq for r in store.list_alerts()} == {1, 2}
    assert store.get(a.header.alert_id).outcome is None


def test_two_workers_racing_store_each_alert_once(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    alerts = [opened(i) for i in range(1, 41)]
    results: list[StoreResult] = []
    lock = threading.Lock()

    def worker() -> None:
        store = AlertStore(path)  # separate connection, like a separate process
        for a in alerts:
            r = store.store_alert(a)
            with lock:
                results.append(r)
        store.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(StoreResult.STORED) == 40
    assert results.count(StoreResult.DUPLICATE) == 40
    assert AlertStore(path).count() == 40


def test_adjudication_and_lookup_by_prefix(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    a = opened(1)
    store.store_alert(a)
    row = store.adjudicate(a.header.alert_id[:8], "false-alert", "PC 1234")
    assert (row.outcome, row.outcome_by) == ("false-alert", "PC 1234")
    row = store.adjudicate(a.header.alert_id, "confirmed-false", "Sgt 99")
    assert row.outcome == "confirmed-false"
    assert store.list_alerts(unadjudicated=True) == []
    with pytest.raises(UsageError, match="outcome"):
        store.adjudicate(a.header.alert_id, "maybe", "x")
    with pytest.raises(UsageError):
        store.get("zz")
    with pytest.raises(AlertStoreError, match="not in"):
        store.get("0" * 32)


def test_purge_removes_old_alerts_with_their_crops(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    old, new = opened(1), opened(2)
    store.store_alert(old, received_at=time.time() - 40 * 86400)
    store.store_alert(new)
    events: list[tuple[str, dict[str, object]]] = []
    assert store.purge_older_than(31 * 86400, lambda e, f: events.append((e, f))) == 1
    assert [r.alert_id for r in store.list_alerts()] == [new.header.alert_id]
    assert store.crop(old.header.alert_id) is None
    assert events == [("hub.alert_purged", {"alert_id": old.header.alert_id})]


def test_purged_crops_leave_no_bytes_in_the_database_files(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    face = os.urandom(30_000)  # stands for a crop: bytes found nowhere else, several pages
    needle = face[10_000:10_064]
    old = opened(1, jpeg=FAKE_JPEG + face)
    new = opened(2)
    store.store_alert(old, received_at=time.time() - 40 * 86400)
    store.store_alert(new)

    def on_disk() -> bytes:
        return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("a.db*")))

    assert needle in on_disk()
    assert store.purge_older_than(31 * 86400) == 1
    assert needle not in on_disk()
    assert store.crop(new.header.alert_id) == new.content.probe_jpeg


def test_purge_leaves_a_tombstone_so_a_late_redelivery_is_a_duplicate(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    old, new = opened(1), opened(2)
    store.store_alert(old, received_at=time.time() - 40 * 86400)
    store.store_alert(new)
    assert store.purge_older_than(31 * 86400) == 1
    # The camera never got its ack and sends the same bytes again, after the purge.
    assert store.store_alert(old) is StoreResult.DUPLICATE
    assert store.count() == 1 and store.crop(old.header.alert_id) is None
    assert store.is_purged(old.header.alert_id) and not store.is_purged(new.header.alert_id)
    # The ack proof survives in the tombstone, so the duplicate can be acknowledged.
    assert store.ack_secret(old.header.alert_id) == old.ack_secret
    # Other bytes under the purged id, or the purged (device, seq) under a new id: refused.
    assert store.store_alert(opened(3, alert_id=old.header.alert_id)) is StoreResult.CONFLICT
    assert store.store_alert(opened(1)) is StoreResult.CONFLICT
    store.close()
    reopened = AlertStore(tmp_path / "a.db")
    assert reopened.store_alert(old) is StoreResult.DUPLICATE  # kept across restarts
    assert reopened.count() == 1


def test_tombstones_hold_no_content(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    store.store_alert(opened(1), received_at=time.time() - 40 * 86400)
    store.purge_older_than(31 * 86400)
    store.close()
    db = sqlite3.connect(tmp_path / "a.db")
    columns = {r[1] for r in db.execute("PRAGMA table_info(purged_alerts)")}
    assert columns == {
        "alert_id",
        "device_id",
        "seq",
        "envelope_sha256",
        "ack_secret",
        "purge_id",
        "key_id",
    }
    assert db.execute("SELECT count(*) FROM purged_alerts").fetchone() == (1,)
    for table in ("alerts", "crops", "adjudications"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_every_purge_run_is_recorded(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    for seq in (1, 2):
        store.store_alert(opened(seq), received_at=time.time() - 40 * 86400)
    store.store_alert(opened(3))
    first = store.purge(31 * 86400, by_ref="alerts watch hub-main-1")
    second = store.purge(31 * 86400)
    assert (first.alerts, first.by_ref) == (2, "alerts watch hub-main-1")
    assert (second.alerts, second.by_ref) == (0, "alerts purge")
    assert first.cutoff == pytest.approx(first.at - 31 * 86400)
    assert AlertStore(tmp_path / "a.db").purge_log() == [second, first]


def test_a_re_keyed_device_starts_its_sequence_again(tmp_path: Path) -> None:
    dev = "lfr-test-01"
    store = AlertStore(tmp_path / "a.db")
    store.register_device_key(dev, KEYS.device.public_key())
    old = [opened(seq) for seq in (1, 2, 3)]
    for a in old[:2]:
        store.store_alert(a, received_at=time.time() - 40 * 86400)
    store.store_alert(old[2])
    assert store.purge_older_than(31 * 86400) == 2  # seq 1 and 2 are tombstones now
    # The board is re-flashed: new key, sequence from 1 again, approved with --replace.
    reflashed = Ed25519PrivateKey.generate()
    store.register_device_key(dev, reflashed.public_key())
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


_SCHEMA_BEFORE_KEY_IDS = """
CREATE TABLE device_keys (device_id TEXT PRIMARY KEY, public_pem TEXT NOT NULL,
    added_at REAL NOT NULL);
CREATE TABLE alerts (alert_id TEXT PRIMARY KEY, device_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL, seq INTEGER NOT NULL, sealed_at REAL NOT NULL,
    received_at REAL NOT NULL, watchlist_entry TEXT NOT NULL, score REAL NOT NULL,
    threshold REAL NOT NULL, model_id TEXT NOT NULL, track_id INTEGER NOT NULL,
    first_seen REAL NOT NULL, decided_at REAL NOT NULL, quality_json TEXT NOT NULL,
    envelope_sha256 TEXT NOT NULL, UNIQUE (device_id, seq));
CREATE INDEX alerts_received ON alerts (received_at);
CREATE TABLE crops (alert_id TEXT NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('probe', 'scene')), jpeg BLOB NOT NULL,
    PRIMARY KEY (alert_id, kind));
CREATE TABLE purge_log (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
    older_than_s REAL NOT NULL, cutoff REAL NOT NULL, alerts INTEGER NOT NULL,
    by_ref TEXT NOT NULL);
CREATE TABLE purged_alerts (alert_id TEXT PRIMARY KEY, device_id TEXT NOT NULL,
    seq INTEGER NOT NULL, envelope_sha256 TEXT NOT NULL, ack_secret BLOB,
    purge_id INTEGER NOT NULL REFERENCES purge_log (id), UNIQUE (device_id, seq));
CREATE TABLE adjudications (id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    outcome TEXT NOT NULL, by_ref TEXT NOT NULL, at REAL NOT NULL);
"""


def test_an_older_database_keeps_its_rows_and_gains_per_key_sequences(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    a, gone = opened(1), opened(2)
    db = sqlite3.connect(path)
    db.executescript(_SCHEMA_BEFORE_KEY_IDS)
    pem = KEYS.device.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    db.execute("INSERT INTO device_keys VALUES ('lfr-test-01', ?, 0)", (pem.decode(),))
    h, c = a.header, a.content
    db.execute(
        "INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (h.alert_id, h.device, h.deployment, h.seq, h.sealed_at, time.time(),
         c.watchlist_entry, c.score, c.threshold, c.model_id, c.track_id, c.first_seen,
         c.decided_at, "{}", a.envelope_sha256),
    )  # fmt: skip
    db.execute("INSERT INTO crops VALUES (?, 'probe', ?)", (h.alert_id, c.probe_jpeg))
    db.execute(
        "INSERT INTO adjudications (alert_id, outcome, by_ref, at) VALUES (?, 'false-alert', 'op', 0)",
        (h.alert_id,),
    )
    db.execute("INSERT INTO purge_log VALUES (1, 0, 0, 0, 1, 'alerts purge')")
    db.execute(
        "INSERT INTO purged_alerts VALUES (?, 'lfr-test-01', 2, ?, ?, 1)",
        (gone.header.alert_id, gone.envelope_sha256, gone.ack_secret),
    )
    db.commit()
    db.close()
    store = AlertStore(path)
    # Nothing was lost to the rebuild (no cascade to crops or adjudications).
    assert store.get(h.alert_id).outcome == "false-alert"
    assert store.crop(h.alert_id) == c.probe_jpeg
    assert store.is_purged(gone.header.alert_id)
    # The old rows belong to the key enrolled at the upgrade: its sequences stay taken.
    assert store.store_alert(a) is StoreResult.DUPLICATE
    assert store.store_alert(gone) is StoreResult.DUPLICATE
    assert store.store_alert(opened(1)) is StoreResult.CONFLICT
    assert store.store_alert(opened(2)) is StoreResult.CONFLICT
    reflashed = Ed25519PrivateKey.generate()
    store.register_device_key("lfr-test-01", reflashed.public_key())
    assert store.store_alert(opened(2, signer=reflashed)) is StoreResult.STORED
    store.close()
    assert AlertStore(path).count() == 2  # a second open leaves the upgraded tables alone


def test_a_checkpoint_blocked_by_a_reader_is_reported_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a.db"
    store = AlertStore(path)
    face = os.urandom(30_000)
    old = opened(1, jpeg=FAKE_JPEG + face)
    store.store_alert(old, received_at=time.time() - 40 * 86400)
    store.store_alert(opened(2))
    # Another process reads from a snapshot taken before the purge.
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM alerts").fetchone()
    events: list[str] = []
    caplog.set_level(logging.WARNING, logger="agent.hub.alert_store")
    assert store.purge_older_than(31 * 86400, lambda e, f: events.append(str(f["alert_id"]))) == 1
    assert events == [old.header.alert_id]  # audited although the checkpoint failed
    assert str(path) in caplog.text and "checkpoint" in caplog.text
    assert face[10_000:10_064] in (tmp_path / "a.db-wal").read_bytes()
    reader.execute("COMMIT")
    reader.close()
    caplog.clear()
    # The next purge deletes nothing but completes the checkpoint.
    assert store.purge_older_than(31 * 86400) == 0
    assert "checkpoint" not in caplog.text
    assert (tmp_path / "a.db-wal").stat().st_size == 0


def test_device_key_registry(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    assert store.device_key("d1") is None
    k1, k2 = Ed25519PrivateKey.generate().public_key(), Ed25519PrivateKey.generate().public_key()
    store.register_device_key("d1", k1)
    assert store.device_key("d1") == k1
    store.register_device_key("d1", k2)
    assert AlertStore(tmp_path / "a.db").device_key("d1") == k2


def test_unopenable_database_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "x.db").mkdir()
    with pytest.raises(AlertStoreError, match="cannot open"):
        AlertStore(tmp_path / "x.db")
