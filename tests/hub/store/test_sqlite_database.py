"""The SQLite hub database as a file: operator-only modes, the settings every connection
gets, and purged crops gone from the files (the -wal included) once a purge returns."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from support.alert_factory import FAKE_JPEG, AlertKeys, make_content

from agent.hub.store.alert_store import AlertStore
from agent.trust.alert_envelope import OpenedAlert, open_alert, seal_alert

KEYS = AlertKeys.generate()
DEV = "lfr-test-01"


def opened(seq: int, jpeg: bytes = FAKE_JPEG) -> OpenedAlert:
    sealed = seal_alert(
        make_content(DEV, seq, scene=True, jpeg=jpeg),
        seq=seq,
        device_key=KEYS.device,
        hub_key=KEYS.hub.public_key(),
    )
    return open_alert(
        sealed.envelope, sender=DEV, device_key=KEYS.device.public_key(), hub_key=KEYS.hub
    )


def test_new_files_are_operator_only(tmp_path: Path) -> None:
    path = tmp_path / "hub" / "alerts.db"
    store = AlertStore(path)
    store.store_alert(opened(1))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for name in ("alerts.db", "alerts.db-wal", "alerts.db-shm"):
        assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name


def test_every_connection_gets_the_settings_the_crops_need(tmp_path: Path) -> None:
    store = AlertStore(f"sqlite:///{tmp_path / 'a.db'}")
    with store.database.autocommit() as driver:
        got = {
            p: driver.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("journal_mode", "synchronous", "secure_delete", "foreign_keys",
                      "temp_store", "busy_timeout")
        }  # fmt: skip
    assert got == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "secure_delete": 1,
        "foreign_keys": 1,
        "temp_store": 2,  # MEMORY
        "busy_timeout": 30000,
    }


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
    caplog.set_level(logging.WARNING, logger="agent.hub.store.purge_scrub")
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
