"""The change feed: a subscriber learns of a change within a second, whichever process
made it, on SQLite and on PostgreSQL; nothing for a rolled-back transaction; a lost
PostgreSQL connection or a slow reader becomes one ``resync``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.alert_factory import AlertKeys, make_content

from agent.hub.store import change_feed
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.change_feed import Change, Subscription
from agent.hub.store.database import HubDatabase
from agent.trust.alert_envelope import open_alert, seal_alert
from hil.local_postgres import LocalPostgres

KEYS = AlertKeys.generate()
DEV = "lfr-test-01"
WAIT_S = 5.0  # generous for a loaded machine; the feed itself takes milliseconds


def next_change(sub: Subscription, *, skip: tuple[str, ...] = ()) -> Change:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        change = sub.get(timeout=max(0.0, deadline - time.monotonic()))
        if change is not None and change.kind not in skip:
            return change
    raise AssertionError(f"no change within {WAIT_S} s")


def store_one(store: AlertStore, seq: int) -> None:
    sealed = seal_alert(
        make_content(DEV, seq), seq=seq, device_key=KEYS.device, hub_key=KEYS.hub.public_key()
    )
    store.store_alert(
        open_alert(
            sealed.envelope, sender=DEV, device_key=KEYS.device.public_key(), hub_key=KEYS.hub
        )
    )


def test_changes_in_this_process_arrive_named_after_the_commit(hub_db_url: str) -> None:
    db = HubDatabase(hub_db_url)
    store = AlertStore(db)
    with db.changes.subscribe() as sub:
        store_one(store, 1)
        change = next_change(sub, skip=("changed",))
        row = store.list_alerts()[0]
        assert (change.kind, change.ref) == ("alert.stored", str(row.row_id))
        store.adjudicate(row.alert_id, "false-alert", "PC 1")
        assert next_change(sub, skip=("changed",)).kind == "alert.adjudicated"
    db.close()


def test_a_change_by_another_process_arrives(hub_db_url: str) -> None:
    db = HubDatabase(hub_db_url)
    with db.changes.subscribe() as sub:
        time.sleep(0.3)  # the feed's thread is watching before the other process writes
        script = textwrap.dedent(
            """
            import sys
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from agent.hub.store.alert_store import AlertStore
            AlertStore(sys.argv[1]).register_device_key("lfr-other", Ed25519PrivateKey.generate().public_key())
            """
        )
        wrote = time.monotonic()
        subprocess.run([sys.executable, "-c", script, hub_db_url], check=True, timeout=60)
        change = next_change(sub)
        seen = time.time()
        waited = time.monotonic() - wrote
    # SQLite cannot name another process's change; PostgreSQL carries it whole.
    expected = ("changed", "") if db.dialect == "sqlite" else ("device.key", "lfr-other")
    assert (change.kind, change.ref) == expected
    delay = f", {seen - change.at:.3f} s after its commit" if db.dialect == "postgresql" else ""
    print(f"change feed ({db.dialect}): seen {waited:.3f} s after starting the writer{delay}")
    db.close()


def test_a_rolled_back_transaction_announces_nothing(hub_db_url: str) -> None:
    db = HubDatabase(hub_db_url)
    with db.changes.subscribe() as sub:
        with pytest.raises(RuntimeError), db.write() as conn:
            db.changes.emit(conn, "alert.stored", "1")
            raise RuntimeError("abandoned")
        with db.write() as conn:
            db.changes.emit(conn, "device.status", "lfr-test-01")
        change = next_change(sub, skip=("changed",))
        assert (change.kind, change.ref) == ("device.status", "lfr-test-01")
        later = sub.get(timeout=0.5)
        assert later is None or later.kind == "changed"
    db.close()


def test_a_change_right_after_subscribing_is_not_lost(
    hub_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL delivers a NOTIFY only to connections already listening: subscribe
    # returns once the feed's connection listens, so nothing committed after it is lost,
    # however slowly the listening thread starts (here half a second late, as on a
    # loaded machine).
    listen = change_feed.ChangeFeed._listen_postgres

    def late(self: change_feed.ChangeFeed) -> None:
        time.sleep(0.5)
        listen(self)

    monkeypatch.setattr(change_feed.ChangeFeed, "_listen_postgres", late)
    for _ in range(3):
        db = HubDatabase(hub_db_url)
        with db.changes.subscribe() as sub:
            with db.write() as conn:
                db.changes.emit(conn, "device.status", "lfr-test-01")
            change = next_change(sub, skip=("changed",))
            assert (change.kind, change.ref) == ("device.status", "lfr-test-01")
        db.close()


def test_bad_kinds_and_refs_are_refused(tmp_path: object) -> None:
    db = HubDatabase(f"{tmp_path}/hub.db")
    with db.write() as conn:
        for kind in ("", "Alert", "a b", "x" * 65, "naïve"):
            with pytest.raises(ValueError, match="change kind"):
                db.changes.emit(conn, kind)
        with pytest.raises(ValueError, match="ref"):
            db.changes.emit(conn, "alert.stored", "r" * 201)
    db.close()


def test_a_reader_that_falls_behind_gets_one_resync(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(change_feed, "MAX_PENDING", 5)
    db = HubDatabase(f"{tmp_path}/hub.db")
    with db.changes.subscribe() as sub:
        for n in range(12):
            with db.write() as conn:
                db.changes.emit(conn, "device.status", str(n))
        got = []
        while (c := sub.get(timeout=0.3)) is not None:
            got.append(c)
    kinds = [c.kind for c in got if c.kind != "changed"]
    assert kinds[0] == "resync" and len(kinds) <= 5
    assert got[-1].ref == "11" or got[-1].kind == "changed"
    db.close()


def test_asyncio_readers_wait_without_blocking_the_loop(tmp_path: object) -> None:
    db = HubDatabase(f"{tmp_path}/hub.db")

    async def main() -> tuple[Change | None, int, Change | None]:
        with db.changes.subscribe() as sub:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            tick = asyncio.create_task(ticker())
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, lambda: AlertStore(db).register_device_key(
                "lfr-x", Ed25519PrivateKey.generate().public_key()))  # fmt: skip
            got = await sub.next(timeout=WAIT_S)
            nothing = await sub.next(timeout=0.2) if got and got.kind != "changed" else None
            tick.cancel()
            return got, ticks, nothing

    got, ticks, _ = asyncio.run(main())
    assert got is not None and got.kind == "device.key"
    assert ticks >= 10  # the loop kept running while the reader waited
    db.close()


@pytest.mark.system
@pytest.mark.fault
def test_the_postgresql_listener_survives_a_restart_and_says_resync(
    postgres_cluster: LocalPostgres, postgres_url: str
) -> None:
    db = HubDatabase(postgres_url)
    writer = HubDatabase(postgres_url)
    with db.changes.subscribe() as sub:
        time.sleep(0.3)
        postgres_cluster.restart()
        with writer.write() as conn:  # pre-ping replaces the writer's dead connections
            writer.changes.emit(conn, "device.status", "after-restart")
        # That change may arrive (committed after the listener was back) or be lost with
        # the dead connection; either way the subscriber is told to resync.
        assert next_change(sub, skip=("device.status",)).kind == "resync"
        # Once reconnected, changes arrive named again.
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with writer.write() as conn:
                writer.changes.emit(conn, "device.status", "later")
            c = sub.get(timeout=0.5)
            if c is not None and c.ref == "later":
                break
        else:
            raise AssertionError("no named change after the restart")
    writer.close()
    db.close()
