"""Power cuts of the hub's shared store on PostgreSQL: the cluster's data directory on
LazyFS, a hub worker storing and adjudicating alerts, the storage cut at a random moment
or exactly before/after the write-ahead log is written or synced, then the server killed
with the worker (``hil/power_cut/postgres_on_lazyfs.py``). After the reboot every alert
the worker had been told was stored (what it acknowledges to the camera) is there once,
and every adjudication it had been told was saved is there. Real PostgreSQL from the
Debian package, real LazyFS; the worker is this repository's AlertStore in its own
process (``tests/support/store_writer.py``)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ci_required import unavailable

from agent.hub.store.alert_store import AlertStore
from hil.local_postgres import postgres_bin
from hil.power_cut.lazyfs_mount import CrashFault, LazyFsError, find_binary, fuse_usable
from hil.power_cut.postgres_on_lazyfs import PostgresOnLazyFs

pytestmark = [pytest.mark.system, pytest.mark.fault, pytest.mark.slow]

DEVICE = "lfr-pgcut-01"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster() -> Iterator[PostgresOnLazyFs]:
    why = fuse_usable()
    if why is not None:
        unavailable(why)
    try:
        find_binary()
    except LazyFsError as exc:
        unavailable(str(exc))
    if postgres_bin() is None:
        unavailable("PostgreSQL server not installed (apt-get install postgresql)")
    # Under /tmp and world-traversable: the server's user must reach its data directory.
    parent = os.environ.get("PYTEST_DEBUG_TEMPROOT")
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lfr-pgcut-", dir=parent or None))
    os.chmod(work, 0o755)
    c = PostgresOnLazyFs(work)
    try:
        c.boot()
        assert c.pg is not None
        c.pg.psql('CREATE DATABASE "hub"')
        AlertStore(c.url("hub"))  # the schema, migrated, before any cut
        yield c
    finally:
        c.close()
        subprocess.run(["rm", "-rf", str(work)], check=False)


class Worker:
    """The stand-in worker's process and what it was told was durable."""

    def __init__(self, url: str) -> None:
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "support.store_writer", url, DEVICE],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.stored: list[str] = []
        self.adjudicated: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            what, alert_id, _ = line.split()
            (self.stored if what == "stored" else self.adjudicated).append(alert_id)

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.stored) < n:
            assert self.proc.poll() is None, "the worker stopped before the cut"
            assert time.monotonic() < deadline, f"only {len(self.stored)} alerts stored"
            time.sleep(0.01)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)


def _cut_and_check(cluster: PostgresOnLazyFs, worker: Worker) -> tuple[int, int]:
    worker.kill()
    cluster.power_cut()
    stored, adjudicated = list(worker.stored), list(worker.adjudicated)
    cluster.boot()  # crash recovery from the write-ahead log
    store = AlertStore(cluster.url("hub"))
    rows = store.list_alerts(limit=100_000)
    ids = [r.alert_id for r in rows]
    assert len(ids) == len(set(ids)), "an alert is stored twice"
    missing = sorted(set(stored) - set(ids))
    assert not missing, f"{len(missing)} acknowledged alerts lost: {missing[:3]}"
    by_id = {r.alert_id: r for r in rows}
    lost = [a for a in adjudicated if by_id[a].outcome != "false-alert"]
    assert not lost, f"{len(lost)} saved adjudications lost: {lost[:3]}"
    return len(stored), len(ids)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_acknowledged_alerts_survive_a_cut_at_a_random_moment(
    cluster: PostgresOnLazyFs, seed: int
) -> None:
    worker = Worker(cluster.url("hub"))
    worker.wait_for(5)
    time.sleep(random.Random(seed).uniform(0.0, 1.5))
    acked, kept = _cut_and_check(cluster, worker)
    assert acked >= 5
    # What was committed but not yet reported, or written by a commit that had not
    # returned when the power went, may be there too; never less than what was acked.
    assert kept >= acked


@pytest.mark.parametrize(
    ("timing", "op"),
    [("before", "fsync"), ("after", "fsync"), ("before", "write"), ("after", "write")],
)
def test_acknowledged_alerts_survive_a_cut_at_the_write_ahead_log(
    cluster: PostgresOnLazyFs, timing: str, op: str
) -> None:
    worker = Worker(cluster.url("hub"))
    worker.wait_for(5)
    before = len(worker.stored)
    # The next write or sync of a log segment: LazyFS stops there (the storage is gone,
    # and the server and the worker are killed by the harness the moment it does).
    cluster.arm(CrashFault(op, timing, cluster.fault_path("pg_wal/0.*")))
    deadline = time.monotonic() + 30
    while cluster.fs.alive:
        assert time.monotonic() < deadline, "the fault never fired"
        time.sleep(0.01)
    assert cluster.fs.fired()
    acked, kept = _cut_and_check(cluster, worker)
    assert acked >= before and kept >= acked


def test_a_second_cut_after_recovery_loses_nothing_either(cluster: PostgresOnLazyFs) -> None:
    for _ in range(2):
        worker = Worker(cluster.url("hub"))
        worker.wait_for(5)
        _cut_and_check(cluster, worker)
    assert cluster.boots == 3


def test_the_check_sees_the_loss_when_commits_return_before_the_log_is_synced(
    cluster: PostgresOnLazyFs,
) -> None:
    # The control: the same cut with ``synchronous_commit = off`` (a commit returns before
    # its log record is synced; the log writer syncs every 10 s here). Alerts the worker
    # was told were stored are then lost, and the check must say so.
    assert cluster.pg is not None
    cluster.pg.psql("ALTER DATABASE hub SET synchronous_commit = off")
    cluster.pg.psql("ALTER SYSTEM SET wal_writer_delay = '10s'")
    cluster.pg.psql("SELECT pg_reload_conf()")
    worker = Worker(cluster.url("hub"))
    worker.wait_for(20)
    with pytest.raises(AssertionError, match="acknowledged alerts lost"):
        _cut_and_check(cluster, worker)
