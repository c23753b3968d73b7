"""LazyFS as the power-cut harness drives it: what a cut loses, where a fault stops it, what
a torn write keeps. Real LazyFS over a real folder; the programs are this test's writes."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

from hil.power_cut.lazyfs_mount import (
    MAX_COMMAND_BYTES,
    CrashFault,
    LazyFsError,
    LazyFsMount,
    TornOp,
    TornSeq,
)

pytestmark = [pytest.mark.system, pytest.mark.fault]


def _write(path: Path, data: bytes, sync: bool) -> None:
    with path.open("wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())


def _wait_dead(fs: LazyFsMount, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while fs.alive:
        assert time.monotonic() < deadline, "LazyFS did not stop at the fault"
        time.sleep(0.01)


def test_a_power_cut_loses_what_was_not_synced_and_keeps_what_was(lazyfs: LazyFsMount) -> None:
    _write(lazyfs.mount_dir / "synced", b"kept", sync=True)
    _write(lazyfs.mount_dir / "unsynced", b"lost", sync=False)
    # Before the cut the program sees both (LazyFS's cache), the disk only the synced one.
    assert (lazyfs.mount_dir / "unsynced").read_bytes() == b"lost"
    assert (lazyfs.lower_dir / "unsynced").read_bytes() == b""
    lazyfs.power_cut()
    lazyfs.mount()
    assert (lazyfs.mount_dir / "synced").read_bytes() == b"kept"
    # Creating the file is metadata (on disk at once); its data never was.
    assert (lazyfs.mount_dir / "unsynced").read_bytes() == b""


def test_a_crash_fault_stops_lazyfs_right_after_the_rename_it_names(
    lazyfs: LazyFsMount,
) -> None:
    died = threading.Event()
    lazyfs.on_death = died.set
    keys = lazyfs.mount_dir / "keys"
    keys.mkdir()
    lazyfs.arm(CrashFault("rename", "after", r"keys/second\.pem$"))
    renamed = []
    with pytest.raises(OSError):
        for name in ("first.pem", "second.pem", "third.pem"):
            tmp = keys / f".{name}.tmp"
            _write(tmp, name.encode(), sync=True)
            os.replace(tmp, keys / name)
            renamed.append(name)
    _wait_dead(lazyfs)
    assert died.wait(5), "the harness was not told that the power went"
    # The rename named by the fault happened (after), the next one never did, and the
    # source pattern LazyFS ignores for renames did not make an earlier one match.
    assert renamed == ["first.pem"]
    assert sorted(p.name for p in (lazyfs.lower_dir / "keys").iterdir()) == [
        "first.pem",
        "second.pem",
    ]


def test_a_torn_write_keeps_only_the_parts_it_names(lazyfs: LazyFsMount) -> None:
    log = lazyfs.mount_dir / "audit.jsonl"
    _write(log, b"line one\n", sync=True)
    lazyfs.arm(TornOp(lazyfs.fault_path("audit.jsonl"), 3, (1, 3)))
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        with pytest.raises(OSError):
            os.write(fd, b"AAAAAAAAAABBBBBBBBBBCCCCCCCCC\n")
            os.fsync(fd)
    finally:
        with contextlib.suppress(OSError):  # the filesystem is gone with its power
            os.close(fd)
    _wait_dead(lazyfs)
    assert (lazyfs.lower_dir / "audit.jsonl").read_bytes() == (
        b"line one\n" + b"A" * 10 + bytes(10) + b"C" * 9 + b"\n"
    )


def test_a_torn_sequence_given_at_mount_keeps_the_write_it_names(lazyfs: LazyFsMount) -> None:
    lazyfs.power_cut()
    (lazyfs.lower_dir / "w").mkdir()
    lazyfs.mount(injections=(TornSeq(lazyfs.fault_path("w/f"), (2,)),))
    fd = os.open(lazyfs.mount_dir / "w" / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError):
            os.write(fd, b"first")
            os.write(fd, b"second")
            os.fsync(fd)
    finally:
        with contextlib.suppress(OSError):  # the filesystem is gone with its power
            os.close(fd)
    _wait_dead(lazyfs)
    assert (lazyfs.lower_dir / "w" / "f").read_bytes() == bytes(5) + b"second"


def test_a_command_longer_than_lazyfs_reads_at_once_is_refused(lazyfs: LazyFsMount) -> None:
    # LazyFS would take the first 100 bytes as one command and the rest as another.
    with pytest.raises(LazyFsError, match="longer than"):
        lazyfs.arm(CrashFault("rename", "after", "x" * MAX_COMMAND_BYTES))
    assert lazyfs.alive
