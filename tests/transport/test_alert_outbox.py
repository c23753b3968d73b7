"""The durable outbox on a real filesystem: persistence, torn writes, retention, the cap."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import pytest

from agent.config import OutboxSection
from agent.transport.alert_outbox import (
    AckResult,
    AlertOutbox,
    OutboxError,
    OutboxFullError,
    decode_entry,
    encode_entry,
    open_outbox,
)
from agent.trust.alert_envelope import new_alert_id


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []
        self.alarms: list[tuple[bool, str]] = []

    def audit(self, event: str, fields: dict[str, object]) -> None:
        self.events.append((event, fields))

    def alarm(self, active: bool, message: str) -> None:
        self.alarms.append((active, message))

    def names(self) -> list[str]:
        return [e for e, _ in self.events]


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(folder: Path, rec: Recorder, clock: Clock | None = None, **kw: float) -> AlertOutbox:
    return AlertOutbox(
        folder,
        max_bytes=int(kw.get("max_bytes", 1_000_000)),
        alarm_fraction=kw.get("alarm_fraction", 0.8),
        retention_s=kw.get("retention_s", 31 * 86400),
        audit=rec.audit,
        alarm=rec.alarm,
        clock=clock or Clock(),
    )


def secret_of(alert_id: str) -> bytes:
    """The ack secret these tests give each entry (any 16 bytes the hub would learn)."""
    return hashlib.sha256(alert_id.encode()).digest()[:16]


def add(box: AlertOutbox, payload: bytes = b"envelope" * 10) -> str:
    aid = new_alert_id()
    box.add(aid, box.next_sequence(), payload, secret_of(aid))
    return aid


def legacy_entry(alert_id: str, seq: int, envelope: bytes, created: float) -> bytes:
    """An entry in the first format (``LFROBX1``), as an earlier version wrote it."""
    head = struct.pack(
        ">8sQQ16sI32s",
        b"LFROBX1\n",
        int(created * 1000),
        seq,
        bytes.fromhex(alert_id),
        len(envelope),
        hashlib.sha256(envelope).digest(),
    )
    return head + envelope


def test_entries_survive_reopening_and_leave_only_when_acknowledged(tmp_path: Path) -> None:
    rec = Recorder()
    box = make(tmp_path, rec)
    ids = [add(box, f"env-{i}".encode()) for i in range(5)]
    reopened = make(tmp_path, rec)
    assert [e.alert_id for e in reopened.pending()] == ids
    assert reopened.read(ids[2]) == b"env-2"
    assert reopened.pending()[2].ack_secret == secret_of(ids[2])
    aid = ids[2]
    assert reopened.acknowledge(aid, secret_of(aid)) is AckResult.DELETED
    assert reopened.acknowledge(aid, secret_of(aid)) is AckResult.UNKNOWN
    again = make(tmp_path, rec)
    assert [e.alert_id for e in again.pending()] == ids[:2] + ids[3:]


def test_sequence_survives_restarts_and_never_goes_back(tmp_path: Path) -> None:
    rec = Recorder()
    box = make(tmp_path, rec)
    seqs = [box.next_sequence() for _ in range(3)]
    assert seqs == [1, 2, 3]
    assert make(tmp_path, rec).next_sequence() == 4
    # A counter file restored from an old backup cannot re-use a pending entry's number.
    box = make(tmp_path, rec)
    box.add(new_alert_id(), 9, b"x", bytes(16))
    (tmp_path / "sequence").write_text("2\n")
    assert make(tmp_path, rec).next_sequence() == 10


def test_torn_temporary_write_is_discarded(tmp_path: Path) -> None:
    rec = Recorder()
    box = make(tmp_path, rec)
    keep = add(box)
    (tmp_path / ".tmp-00000000000000000002-abc.alert").write_bytes(b"LFROBX2\n\x00\x01")
    box = make(tmp_path, rec)
    assert [e.alert_id for e in box.pending()] == [keep]
    assert not list(tmp_path.glob(".tmp-*"))
    assert "outbox.incomplete_write_discarded" in rec.names()


def test_an_entry_is_written_under_a_temporary_name_that_names_its_sequence(
    tmp_path: Path,
) -> None:
    # Torn writes are aimed at the next entry's temporary file by its name, so the name
    # must be known before the write: .tmp-<seq>.alert (and a leftover says which
    # sequence number was never stored).
    rec = Recorder()
    box = make(tmp_path, rec)
    seq = box.next_sequence()
    (tmp_path / f".tmp-{seq}.alert").write_bytes(b"left by an earlier cut")
    aid = new_alert_id()
    box.add(aid, seq, b"envelope", secret_of(aid))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{seq:020d}-{aid}.alert", "sequence"]
    (tmp_path / f".tmp-{seq + 1}.alert").write_bytes(b"LFROBX2\n")
    make(tmp_path, rec)
    discarded = [f for e, f in rec.events if e == "outbox.incomplete_write_discarded"]
    assert discarded == [{"file": f".tmp-{seq + 1}.alert"}]


@pytest.mark.parametrize("damage", ["truncate", "flip", "header", "secret", "legacy-magic"])
def test_damaged_entry_is_quarantined_never_published(tmp_path: Path, damage: str) -> None:
    rec = Recorder()
    box = make(tmp_path, rec)
    good = add(box)
    bad = add(box, b"z" * 500)
    path = next(e.path for e in box.pending() if e.alert_id == bad)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-1] ^= 0xFF
    elif damage == "secret":
        data[40] ^= 0x01  # a bit of the ack secret: covered by the checksum too
    elif damage == "legacy-magic":
        data[0:8] = b"LFROBX1\n"  # a new entry cannot pass for an old one
    else:
        data[0:8] = b"garbage!"
    path.write_bytes(bytes(data))
    box = make(tmp_path, rec)
    assert [e.alert_id for e in box.pending()] == [good]
    assert (tmp_path / "quarantine" / path.name).exists()
    assert "outbox.entry_quarantined" in rec.names()


def test_entry_damaged_after_open_is_not_read(tmp_path: Path) -> None:
    rec = Recorder()
    box = make(tmp_path, rec)
    aid = add(box)
    path = box.pending()[0].path
    path.write_bytes(path.read_bytes()[:-3])
    assert box.read(aid) is None
    assert aid not in box


def test_retention_purges_old_entries_and_audits_each(tmp_path: Path) -> None:
    rec, clock = Recorder(), Clock()
    box = make(tmp_path, rec, clock, retention_s=86400)
    old = [add(box) for _ in range(3)]
    clock.t += 2 * 86400
    fresh = add(box)
    assert box.purge_expired() == 3
    assert [e.alert_id for e in box.pending()] == [fresh]
    purged = [f["alert_id"] for e, f in rec.events if e == "outbox.retention_purge"]
    assert purged == old
    assert [e.alert_id for e in make(tmp_path, rec, clock).pending()] == [fresh]


def test_alarm_then_refusal_at_the_cap_drops_nothing(tmp_path: Path) -> None:
    rec = Recorder()
    payload = b"p" * 1000
    box = make(tmp_path, rec, max_bytes=10_000, alarm_fraction=0.5)
    stored = []
    with pytest.raises(OutboxFullError, match="refused"):
        for _ in range(20):
            stored.append(add(box, payload))
    assert len(stored) == 9  # 9 x 1092 bytes fit under 10,000
    assert [e.alert_id for e in box.pending()] == stored
    assert rec.alarms and rec.alarms[0][0] is True
    assert "outbox.alarm_on" in rec.names() and "outbox.full_refused" in rec.names()
    for aid in stored:
        assert box.acknowledge(aid, secret_of(aid)) is AckResult.DELETED
    assert rec.alarms[-1][0] is False and "outbox.alarm_off" in rec.names()


def test_entry_format_is_checked_by_length_and_hash() -> None:
    aid, secret = new_alert_id(), bytes(range(16))
    data = encode_entry(aid, 5, b"hello", 1_800_000_000.5, secret)
    assert data[:8] == b"LFROBX2\n" and data[40:56] == secret
    d = decode_entry(data)
    assert (d.alert_id, d.seq, d.created, d.envelope, d.ack_secret) == (
        aid,
        5,
        1_800_000_000.5,
        b"hello",
        secret,
    )
    with pytest.raises(OutboxError, match="length"):
        decode_entry(data + b"x")
    with pytest.raises(OutboxError, match="checksum"):
        decode_entry(data[:-1] + b"X")
    for cut in range(len(data)):  # a torn write, cut anywhere
        with pytest.raises(OutboxError):
            decode_entry(data[:cut])
    with pytest.raises(ValueError):
        encode_entry(aid, 5, b"hello", 1.0, b"short")


def test_only_the_entry_own_secret_deletes_it(tmp_path: Path) -> None:
    rec = Recorder()
    box = make(tmp_path, rec)
    aid = add(box)
    wrong = bytearray(secret_of(aid))
    wrong[-1] ^= 0x01
    for proof in (bytes(wrong), b"", bytes(16), secret_of(aid)[:15]):
        assert box.acknowledge(aid, proof) is AckResult.REFUSED
    assert aid in box and aid in make(tmp_path, rec)
    assert box.acknowledge(aid, secret_of(aid)) is AckResult.DELETED
    assert aid not in box and aid not in make(tmp_path, rec)


def test_first_format_entries_are_read_sent_and_kept_until_retention(tmp_path: Path) -> None:
    rec, clock = Recorder(), Clock()
    old_id = new_alert_id()
    data = legacy_entry(old_id, 3, b"old-envelope", clock.t)
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / f"{3:020d}-{old_id}.alert").write_bytes(data)
    torn_id = new_alert_id()
    torn = legacy_entry(torn_id, 4, b"torn-envelope", clock.t)
    (tmp_path / f"{4:020d}-{torn_id}.alert").write_bytes(torn[:-2])
    box = make(tmp_path, rec, clock, retention_s=86400)
    assert [e.alert_id for e in box.pending()] == [old_id]
    assert box.pending()[0].ack_secret is None and box.size_bytes == len(data)
    assert box.read(old_id) == b"old-envelope"
    assert ("outbox.legacy_entries", {"count": 1}) in rec.events
    assert (tmp_path / "quarantine" / f"{4:020d}-{torn_id}.alert").exists()
    # Nothing proves the hub stored it, whatever an ack carries.
    for proof in (b"", bytes(16), secret_of(old_id)):
        assert box.acknowledge(old_id, proof) is AckResult.REFUSED
    assert box.next_sequence() == 4
    clock.t += 2 * 86400
    assert box.purge_expired() == 1 and len(box) == 0


def test_open_outbox_uses_the_config_section(tmp_path: Path) -> None:
    box = open_outbox(OutboxSection(max_mb=2), tmp_path, Recorder().audit)
    assert box.folder == tmp_path / "outbox" and box.max_bytes == 2 * 1024 * 1024
    assert box.retention_s == 31 * 86400
    assert oct(os.stat(box.folder).st_mode & 0o777) == "0o700"


def test_a_failing_disk_is_an_outbox_error_naming_the_file(tmp_path: Path) -> None:
    """Real filesystem failures (a directory where a file must go), not a mocked OSError."""
    rec = Recorder()
    box = make(tmp_path, rec)
    (tmp_path / "sequence").mkdir()
    with pytest.raises(OutboxError, match=r"sequence: Is a directory"):
        box.next_sequence()
    (tmp_path / "sequence").rmdir()
    aid = new_alert_id()
    seq = box.next_sequence()
    blocker = tmp_path / f"{seq:020d}-{aid}.alert"
    blocker.mkdir()
    (blocker / "x").write_bytes(b"")
    with pytest.raises(OutboxError, match=rf"cannot write {blocker}: "):
        box.add(aid, seq, b"envelope", secret_of(aid))
    assert len(box) == 0 and not list(tmp_path.glob(".tmp-*"))
    # The same alert is taken once the disk works again: a refusal loses nothing.
    (blocker / "x").unlink()
    blocker.rmdir()
    box.add(aid, seq, b"envelope", secret_of(aid))
    assert aid in box and box.read(aid) == b"envelope"


def test_a_refused_alert_retried_is_audited_once(tmp_path: Path) -> None:
    rec = Recorder()
    box = make(tmp_path, rec, max_bytes=600)
    add(box, b"x" * 300)
    aid, seq = new_alert_id(), box.next_sequence()
    for _ in range(5):  # the daemon retries a held alert every control tick
        with pytest.raises(OutboxFullError):
            box.add(aid, seq, b"y" * 300, secret_of(aid))
    assert rec.names().count("outbox.full_refused") == 1
    box.acknowledge(box.pending()[0].alert_id, secret_of(box.pending()[0].alert_id))
    box.add(aid, seq, b"y" * 300, secret_of(aid))
    assert [e.alert_id for e in box.pending()] == [aid]


def test_quarantined_entries_are_purged_at_the_retention_period(tmp_path: Path) -> None:
    rec, clock = Recorder(), Clock()
    for name in ("old", "young"):
        (tmp_path / f"{name}.alert").write_bytes(b"not an entry")
    box = make(tmp_path, rec, clock, retention_s=86400)
    qdir = tmp_path / "quarantine"
    assert sorted(p.name for p in qdir.iterdir()) == ["old.alert", "young.alert"]
    # A damaged header cannot be trusted for its date: the file's own time counts.
    os.utime(qdir / "old.alert", (clock.t - 2 * 86400, clock.t - 2 * 86400))
    os.utime(qdir / "young.alert", (clock.t - 3600, clock.t - 3600))
    assert box.purge_expired() == 0  # no pending entry was due
    assert [p.name for p in qdir.iterdir()] == ["young.alert"]
    purges = [f for e, f in rec.events if e == "outbox.quarantine_purge"]
    assert [f["file"] for f in purges] == ["old.alert"]
    clock.t += 86400
    box.purge_expired()
    assert not list(qdir.iterdir())
    assert rec.names().count("outbox.quarantine_purge") == 2


def test_an_alarm_that_cannot_be_audited_does_not_refuse_a_stored_alert(tmp_path: Path) -> None:
    # The alert that crosses the alarm line is on disk before the alarm is audited; an
    # audit failure there must not make the caller hold (and retry) a stored alert, and a
    # retry of the same alert is simply the stored entry.
    from agent.errors import LfrError

    def failing_audit(event: str, fields: dict[str, object]) -> None:
        if event == "outbox.alarm_on":
            raise LfrError("audit: disk full")

    box = AlertOutbox(
        tmp_path,
        max_bytes=3000,
        alarm_fraction=0.5,
        retention_s=31 * 86400,
        audit=failing_audit,
        clock=Clock(),
    )
    first = add(box, b"p" * 1000)
    aid = new_alert_id()
    seq = box.next_sequence()
    entry = box.add(aid, seq, b"p" * 1000, secret_of(aid))  # crosses 50 %: alarm not audited
    assert [e.alert_id for e in box.pending()] == [first, aid]
    assert box.add(aid, seq, b"p" * 1000, secret_of(aid)) == entry
    with pytest.raises(OutboxError, match="already stored under sequence"):
        box.add(aid, seq + 1, b"p" * 1000, secret_of(aid))
