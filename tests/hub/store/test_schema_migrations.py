"""Schema migrations: the revisions build exactly the declared tables on both engines,
files made by the code before migrations are recognised and upgraded without loss, an
upgrade is all or nothing, several workers opening a new database migrate it once, and
a database from a newer hub is refused."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.hazmat.primitives import serialization
from hub.store import legacy_schemas
from sqlalchemy import text
from support.alert_factory import AlertKeys, make_content

from agent.hub.store.alert_store import AlertStore, AlertStoreError, StoreResult
from agent.hub.store.all_tables import metadata
from agent.hub.store.database import HubDatabase
from agent.hub.store.report_store import DeploymentReportStore
from agent.hub.store.schema_upgrade import BASELINE, _config, current_revision, head_revision
from agent.trust.alert_envelope import OpenedAlert, open_alert, seal_alert
from agent.trust.signed_document import key_id

KEYS = AlertKeys.generate()
DEV = "lfr-test-01"
REPORT = {"device_id": DEV, "deployment_id": "dep-1", "activation_sequence": 7, "alerts": 2}


def opened(seq: int) -> OpenedAlert:
    sealed = seal_alert(
        make_content(DEV, seq, scene=True),
        seq=seq,
        device_key=KEYS.device,
        hub_key=KEYS.hub.public_key(),
    )
    return open_alert(
        sealed.envelope, sender=DEV, device_key=KEYS.device.public_key(), hub_key=KEYS.hub
    )


def test_revisions_form_one_line_from_the_baseline() -> None:
    # Branches that each added a revision must be re-chained when merged: one head.
    script = ScriptDirectory.from_config(_config())
    assert script.get_heads() == [head_revision()]
    chain = [r.revision for r in script.walk_revisions()]
    assert chain[-1] == BASELINE and len(chain) == len(set(chain))


def test_migrations_build_exactly_the_declared_tables(hub_db_url: str) -> None:
    db = HubDatabase(hub_db_url)
    with db.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def _insert(db: sqlite3.Connection, table: str, values: dict[str, object]) -> None:
    """Insert the values the table of this layout has columns for."""
    columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    row = {k: v for k, v in values.items() if k in columns}
    marks = ", ".join("?" for _ in row)
    db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks})", tuple(row.values()))


def _alert_values(a: OpenedAlert, received_at: float) -> dict[str, object]:
    h, c = a.header, a.content
    return {
        "alert_id": h.alert_id, "device_id": h.device, "deployment_id": h.deployment,
        "seq": h.seq, "sealed_at": h.sealed_at, "received_at": received_at,
        "watchlist_entry": c.watchlist_entry, "score": c.score, "threshold": c.threshold,
        "model_id": c.model_id, "track_id": c.track_id, "first_seen": c.first_seen,
        "decided_at": c.decided_at, "quality_json": "{}", "envelope_sha256": a.envelope_sha256,
        "ack_secret": a.ack_secret, "key_id": key_id(KEYS.device.public_key()),
    }  # fmt: skip


def _old_file(path: Path, schema: str, a: OpenedAlert, gone: OpenedAlert) -> None:
    """A hub database as the code of ``schema`` left it: a device key, an adjudicated
    alert with crops, a tombstone (where that code had purges) and a report."""
    db = sqlite3.connect(path)
    db.executescript(schema)
    db.execute(legacy_schemas.REPORTS)
    pem = KEYS.device.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    db.execute("INSERT INTO device_keys VALUES (?, ?, 0)", (DEV, pem.decode()))
    _insert(db, "alerts", _alert_values(a, time.time()))
    db.execute(
        "INSERT INTO crops VALUES (?, 'probe', ?)", (a.header.alert_id, a.content.probe_jpeg)
    )
    db.execute(
        "INSERT INTO crops VALUES (?, 'scene', ?)", (a.header.alert_id, a.content.scene_jpeg)
    )
    for outcome in ("true-alert", "confirmed-false"):
        db.execute(
            "INSERT INTO adjudications (alert_id, outcome, by_ref, at) VALUES (?, ?, 'op', 0)",
            (a.header.alert_id, outcome),
        )
    if "purged_alerts" in schema:
        db.execute("INSERT INTO purge_log VALUES (1, 0, 0, 0, 1, 'alerts purge')")
        _insert(db, "purged_alerts", {**_alert_values(gone, 0), "purge_id": 1})
    db.execute(
        "INSERT INTO deployment_reports VALUES (?, ?, ?, ?, ?, ?)",
        (DEV, "dep-1", 7, 1.0, '{"activation_sequence": 7, "alerts": 2, "deployment_id": '
         '"dep-1", "device_id": "lfr-test-01"}', b"envelope"),
    )  # fmt: skip
    db.commit()
    db.close()


@pytest.mark.parametrize("layout", ["FIRST", "WITH_PURGES", "LAST"])
def test_a_file_from_before_migrations_is_upgraded_without_loss(
    tmp_path: Path, layout: str
) -> None:
    path = tmp_path / "old.db"
    a, gone = opened(1), opened(2)
    schema = getattr(legacy_schemas, layout)
    _old_file(path, schema, a, gone)
    store = AlertStore(path)
    with store.database.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    # Nothing was lost to the rebuilds (no cascade to crops or adjudications).
    row = store.get(a.header.alert_id)
    assert (row.outcome, row.outcome_by) == ("confirmed-false", "op")
    assert [o for o, _by, _at in store.adjudication_history(row.row_id)] == [
        "true-alert",
        "confirmed-false",
    ]
    assert store.crop(a.header.alert_id) == a.content.probe_jpeg
    assert store.crop(a.header.alert_id, "scene") == a.content.scene_jpeg
    assert store.ack_secret(a.header.alert_id) == (None if layout == "FIRST" else a.ack_secret)
    # Old rows belong to the key enrolled at the upgrade and compare by envelope bytes.
    assert store.store_alert(a) is StoreResult.DUPLICATE
    assert store.store_alert(opened(1)) is StoreResult.CONFLICT
    if layout != "FIRST":
        assert store.is_purged(gone.header.alert_id)
        assert store.store_alert(gone) is StoreResult.DUPLICATE
        assert store.store_alert(opened(2)) is StoreResult.CONFLICT
    else:
        assert store.store_alert(gone) is StoreResult.STORED
    assert [r.body for r in DeploymentReportStore(store.database).for_deployment("dep-1")] == [
        REPORT
    ]
    store.close()
    again = AlertStore(path)  # a second open leaves the upgraded tables alone
    assert again.get(a.header.alert_id).outcome == "confirmed-false"


def test_a_file_with_only_the_report_table_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "reports-only.db"
    db = sqlite3.connect(path)
    db.execute(legacy_schemas.REPORTS)
    db.commit()
    db.close()
    reports = DeploymentReportStore(path)
    assert reports.add(REPORT, b"env", 1.0) and not reports.add(REPORT, b"env", 2.0)
    assert AlertStore(path).count() == 0


def test_an_upgrade_that_fails_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    a, gone = opened(1), opened(2)
    _old_file(path, legacy_schemas.LAST, a, gone)
    db = sqlite3.connect(path)
    db.execute("DELETE FROM purge_log")  # the tombstone now points at no purge run
    db.commit()
    before = db.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
    db.close()
    with pytest.raises(AlertStoreError, match="would break 1 references") as err:
        AlertStore(path)
    assert "\n" not in str(err.value)
    db = sqlite3.connect(path)
    assert db.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall() == before
    assert db.execute("SELECT count(*) FROM crops").fetchone() == (2,)


def test_workers_opening_a_new_database_at_once_migrate_it_once(hub_db_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_it() -> None:
        try:
            start.wait()
            AlertStore(hub_db_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db = HubDatabase(hub_db_url)
    with db.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_a_database_from_a_newer_hub_is_refused(hub_db_url: str) -> None:
    db = HubDatabase(hub_db_url)
    with db.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    db.close()
    with pytest.raises(AlertStoreError, match="newer than this lfr-hub knows"):
        AlertStore(hub_db_url)
