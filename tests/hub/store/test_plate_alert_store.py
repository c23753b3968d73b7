"""The hub's plate alert and plates report stores, on SQLite and PostgreSQL alike: stored
once, duplicates and conflicts refused as for faces, adjudication history, retention with
tombstones, and kept apart from the face tables (no row of either kind lands in the
other's tables, no plate table refers to a face table)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import inspect
from support.alert_factory import AlertKeys, make_content, make_plate_content

from agent.errors import UsageError
from agent.hub.store.alert_store import AlertStore, StoreResult
from agent.hub.store.database import HubDatabase
from agent.hub.store.plate_alert_store import PlateAlertStore, PlateAlertStoreError
from agent.hub.store.plate_report_store import PlateReportStore
from agent.hub.store.plate_tables import plate_alerts
from agent.hub.store.report_store import DeploymentReportStore
from agent.trust.alert_envelope import open_alert, seal_alert
from agent.trust.plate_alert_envelope import (
    OpenedPlateAlert,
    open_plate_alert,
    seal_plate_alert,
)

KEYS = AlertKeys.generate()
DEV = "lfr-test-01"


def opened(seq: int, alert_id: str | None = None, plate: str = "AB12 CDE") -> OpenedPlateAlert:
    sealed = seal_plate_alert(
        make_plate_content(DEV, seq, plate=plate),
        seq=seq,
        device_key=KEYS.device,
        hub_key=KEYS.hub.public_key(),
        alert_id=alert_id,
    )
    return open_plate_alert(
        sealed.envelope, sender=DEV, device_key=KEYS.device.public_key(), hub_key=KEYS.hub
    )


@pytest.fixture
def db(hub_db_url: str) -> Iterator[HubDatabase]:
    # Closed after the test: a change feed left listening would reconnect, and log, for
    # the rest of the run once the test's database is dropped.
    database = HubDatabase(hub_db_url)
    try:
        yield database
    finally:
        database.close()


def test_stored_once_then_duplicate_then_conflicts(db: HubDatabase) -> None:
    store = PlateAlertStore(db)
    key = KEYS.device.public_key()
    a = opened(1)
    assert store.store_alert(a, key) is StoreResult.STORED
    assert store.store_alert(a, key) is StoreResult.DUPLICATE
    assert store.store_alert(opened(2, alert_id=a.header.alert_id), key) is StoreResult.CONFLICT
    assert store.store_alert(opened(1), key) is StoreResult.CONFLICT
    assert store.count() == 1
    row = store.get(a.header.alert_id)
    assert (row.plate, row.plate_format, row.reads, row.agreeing) == ("AB12 CDE", "current", 5, 4)
    assert store.crop(row.row_id, "plate") == a.content.plate_jpeg
    assert store.crop(row.row_id, "vehicle") == a.content.vehicle_jpeg
    assert store.ack_secret(a.header.alert_id, device_id=DEV) == a.ack_secret
    with pytest.raises(UsageError, match="crop 'probe'"):
        store.crop(row.row_id, "probe")
    with pytest.raises(PlateAlertStoreError, match="not in"):
        store.get("0" * 32)


def test_adjudication_history_is_kept_and_latest_shown(db: HubDatabase) -> None:
    store = PlateAlertStore(db)
    a = opened(3)
    store.store_alert(a, KEYS.device.public_key())
    store.adjudicate(a.header.alert_id, "false-alert", "PC 1")
    row = store.adjudicate(a.header.alert_id, "confirmed-true", "PS 2")
    assert (row.outcome, row.outcome_by) == ("confirmed-true", "PS 2")
    assert [o for o, _b, _t in store.adjudication_history(row.row_id)] == [
        "false-alert",
        "confirmed-true",
    ]
    with pytest.raises(UsageError, match="outcome 'arrested'"):
        store.adjudicate(a.header.alert_id, "arrested", "PC 1")
    with pytest.raises(UsageError, match="--by"):
        store.adjudicate(a.header.alert_id, "confirmed-true", "  ")


def test_purge_leaves_a_tombstone_so_a_late_copy_is_a_duplicate(db: HubDatabase) -> None:
    store = PlateAlertStore(db)
    key = KEYS.device.public_key()
    a = opened(4)
    store.store_alert(a, key, received_at=time.time() - 40 * 86400)
    b = opened(5)
    store.store_alert(b, key)
    assert store.purge(31 * 86400) == 1
    assert [r.alert_id for r in store.list_alerts()] == [b.header.alert_id]
    assert store.store_alert(a, key) is StoreResult.DUPLICATE
    assert store.ack_secret(a.header.alert_id, device_id=DEV) == a.ack_secret
    assert store.count() == 1


def test_plate_and_face_records_stay_in_their_own_tables(db: HubDatabase) -> None:
    faces = AlertStore(db)
    plates = PlateAlertStore(db)
    face = open_alert(
        seal_alert(
            make_content(DEV, 1), seq=1, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
        ).envelope,
        sender=DEV,
        device_key=KEYS.device.public_key(),
        hub_key=KEYS.hub,
    )
    assert faces.store_alert(face) is StoreResult.STORED
    # The same camera's plate alert with the same sequence number is its own record.
    assert plates.store_alert(opened(1), KEYS.device.public_key()) is StoreResult.STORED
    assert faces.count() == 1 and plates.count() == 1
    assert [r.alert_id for r in faces.list_alerts()] == [face.header.alert_id]
    # No foreign key between the two families of tables, either way.
    inspector = inspect(db.engine)
    plate_names = {"plate_alerts", "plate_crops", "plate_adjudications", "purged_plate_alerts"}
    for table in inspector.get_table_names():
        for fk in inspector.get_foreign_keys(table):
            assert (table in plate_names) == (fk["referred_table"] in plate_names), (table, fk)
    assert not {c.name for c in plate_alerts.c} & {"watchlist_entry", "score", "quality"}


def test_plates_reports_are_kept_apart_from_faces_reports(db: HubDatabase) -> None:
    body = {
        "device_id": DEV,
        "deployment_id": "dep-plates-a",
        "activation_sequence": 3,
        "analytic": "plates",
    }
    plates = PlateReportStore(db)
    assert plates.add(body, b"env", time.time()) is True
    assert plates.add(body, b"env", time.time()) is False
    assert [r.body for r in plates.latest()] == [body]
    assert DeploymentReportStore(db).latest() == []


def test_review_queue_puts_undecided_first_oldest_first_and_filters(db: HubDatabase) -> None:
    store = PlateAlertStore(db)
    key = KEYS.device.public_key()
    ids = []
    for seq in (11, 12, 13):
        a = opened(seq)
        store.store_alert(a, key, received_at=1000.0 + seq)
        ids.append(a.header.alert_id)
    store.adjudicate(ids[0], "false-alert", "PC 1")
    queue = store.review_queue()
    assert [r.alert_id for r in queue] == [ids[1], ids[2], ids[0]]
    assert [r.alert_id for r in store.review_queue(outcome="open")] == ids[1:]
    assert [r.alert_id for r in store.review_queue(outcome="false-alert")] == ids[:1]
    assert store.review_queue(device_id="lfr-other") == []
    assert store.review_queue(deployment_id=queue[0].deployment_id) == queue


def test_storing_adjudicating_and_purging_are_announced_on_the_change_feed(
    db: HubDatabase,
) -> None:
    store = PlateAlertStore(db)
    with db.changes.subscribe() as sub:
        a = opened(21)
        store.store_alert(a, KEYS.device.public_key())
        row = store.get(a.header.alert_id)
        store.adjudicate(a.header.alert_id, "true-alert", "PC 1")
        store.purge(0.0)
        seen = []
        while len(seen) < 3:
            change = sub.get(timeout=10.0)
            assert change is not None, f"only {seen} announced"
            if change.kind != "changed":  # SQLite's own commits may add a bare "changed"
                seen.append((change.kind, change.ref))
    assert seen == [
        ("plate.stored", str(row.row_id)),
        ("plate.adjudicated", str(row.row_id)),
        ("plates.purged", "1"),
    ]
