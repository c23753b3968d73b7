"""The hub database on PostgreSQL: a purge removes the purged crop's bytes from the whole
data directory (tables, TOAST, write-ahead log), the hub's role needs no superuser
rights to do so beyond two grants, and a worker rides out a PostgreSQL restart."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.alert_factory import FAKE_JPEG, AlertKeys, make_content

from agent.hub.store.alert_store import AlertStore, StoreResult
from agent.trust.alert_envelope import OpenedAlert, open_alert, seal_alert
from hil.local_postgres import LocalPostgres

KEYS = AlertKeys.generate()
DEV = "lfr-test-01"
pytestmark = pytest.mark.system


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


def files_holding(data_dir: Path, needle: bytes) -> list[str]:
    hits = []
    for p in sorted(data_dir.rglob("*")):
        try:
            if p.is_file() and needle in p.read_bytes():
                hits.append(str(p.relative_to(data_dir)))
        except OSError:
            continue  # a file removed while walking
    return hits


@pytest.fixture
def hub_role_url(postgres_cluster: LocalPostgres) -> Iterator[str]:
    """A database owned by a plain role ``hub_<pid>`` (no superuser), as a force would run it."""
    role = f"hub_{os.getpid()}_{time.monotonic_ns() % 10**6}"
    postgres_cluster.psql(f"CREATE ROLE {role} LOGIN")
    postgres_cluster.psql(f"CREATE DATABASE {role} OWNER {role}")
    try:
        yield postgres_cluster.url(role).replace("postgres@", f"{role}@", 1)
    finally:
        postgres_cluster.drop_database(role)
        postgres_cluster.psql(f"DROP ROLE IF EXISTS {role}")


def test_purged_crops_leave_no_bytes_in_the_data_directory(
    postgres_cluster: LocalPostgres, postgres_url: str
) -> None:
    store = AlertStore(postgres_url)
    face = os.urandom(30_000)  # bytes found nowhere else, stored out of line (TOAST)
    needle = face[10_000:10_064]
    kept = opened(2)
    store.store_alert(opened(1, jpeg=FAKE_JPEG + face), received_at=time.time() - 40 * 86400)
    store.store_alert(kept)
    postgres_cluster.psql("CHECKPOINT")  # the crop is in a table file now, not only the WAL
    found = files_holding(postgres_cluster.data_dir, needle)
    assert any(f.startswith("base/") for f in found) and any(f.startswith("pg_wal/") for f in found)
    assert store.purge_older_than(31 * 86400) == 1
    assert files_holding(postgres_cluster.data_dir, needle) == []
    assert store.crop(kept.header.alert_id) == kept.content.probe_jpeg


def test_a_plain_role_scrubs_tables_and_with_two_grants_the_wal_too(
    postgres_cluster: LocalPostgres, hub_role_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    role = hub_role_url.split("://", 1)[1].split("@", 1)[0]
    store = AlertStore(hub_role_url)
    caplog.set_level(logging.WARNING, logger="agent.hub.store.purge_scrub")
    face = os.urandom(30_000)
    store.store_alert(opened(1, jpeg=FAKE_JPEG + face), received_at=time.time() - 40 * 86400)
    assert store.purge_older_than(31 * 86400) == 1
    # The tables are rewritten (the role owns them); the WAL needs grants it lacks.
    assert "pg_checkpoint" in caplog.text
    found = files_holding(postgres_cluster.data_dir, face[10_000:10_064])
    assert found and all(f.startswith("pg_wal/") for f in found)
    postgres_cluster.psql(f"GRANT pg_checkpoint TO {role}")
    # Function rights belong to one database: granted in the hub's own.
    postgres_cluster.psql(f"GRANT EXECUTE ON FUNCTION pg_switch_wal() TO {role}", role)
    caplog.clear()
    face2 = os.urandom(30_000)
    store.store_alert(opened(2, jpeg=FAKE_JPEG + face2), received_at=time.time() - 40 * 86400)
    assert store.purge_older_than(31 * 86400) == 1
    assert "pg_checkpoint" not in caplog.text
    for gone in (face, face2):
        assert files_holding(postgres_cluster.data_dir, gone[10_000:10_064]) == []


@pytest.mark.fault
def test_storing_rides_out_a_postgresql_restart(
    postgres_cluster: LocalPostgres, postgres_url: str
) -> None:
    store = AlertStore(postgres_url)
    batch = [opened(i) for i in range(1, 61)]
    results: list[StoreResult] = []
    half = threading.Event()

    def worker() -> None:
        for i, a in enumerate(batch):
            results.append(store.store_alert(a))
            if i == 20:
                half.set()
            time.sleep(0.02)

    t = threading.Thread(target=worker)
    t.start()
    assert half.wait(30)
    postgres_cluster.kill()  # a crash, not a clean shutdown
    time.sleep(1.0)
    postgres_cluster.start()
    t.join(60)
    assert not t.is_alive()
    assert results.count(StoreResult.STORED) == 60
    assert store.count() == 60


@pytest.mark.fault
def test_a_worker_opening_the_database_while_postgresql_restarts_waits_for_it(
    postgres_cluster: LocalPostgres, postgres_url: str
) -> None:
    postgres_cluster.stop("immediate")
    starter = threading.Timer(2.0, postgres_cluster.start)
    starter.start()
    try:
        store = AlertStore(postgres_url)  # waits (up to 30 s) instead of failing
        assert store.store_alert(opened(1)) is StoreResult.STORED
    finally:
        starter.join()
