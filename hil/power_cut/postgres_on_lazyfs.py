"""A PostgreSQL cluster whose data directory is on LazyFS: the hub's shared store under
power cuts.

PostgreSQL's promise is its own write-ahead log: a transaction whose COMMIT returned was
fsynced to the log first (``fsync = on``, ``synchronous_commit = on``, the defaults the
hub runs with), and start-up after a crash replays the log. A power cut here is the
storage going first (LazyFS stopped, everything it had not been asked to sync gone),
then every server process killed; ``boot()`` mounts the same lower folder again and
starts the server, which recovers from what reached the disk.

The server's socket and log stay outside the mount: a FUSE folder cannot hold a Unix
socket. LazyFS runs as root and so creates the cluster's files as root; the data
directory itself is made and handed to the server's user first, which is all the
server checks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

from hil.local_postgres import LocalPostgres
from hil.power_cut.lazyfs_mount import Fault, LazyFsMount


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii")
    except OSError:
        return []
    return [int(w) for w in text.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class PostgresOnLazyFs:
    """``boot()``, ``url(db)``, ``arm(fault)``, ``power_cut()``, ``close()``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.fs = LazyFsMount(work, "pgdata")
        self.fs.on_death = self._kill_server  # a crash fault fired: the machine is off
        self.pg: LocalPostgres | None = None
        self._postmaster: int | None = None
        self.boots = 0

    def boot(self) -> float:
        """Mount and start the server (initdb the first time); the start-up's seconds."""
        self.fs.mount()
        os.chmod(self.fs.mount_dir, 0o755)  # the server's user walks through it
        if self.pg is None:
            self.pg = LocalPostgres(self.work / "pg", data_dir=self.fs.mount_dir / "data")
        t0 = time.monotonic()
        first = not (self.pg.data_dir / "PG_VERSION").exists()
        self.pg.start()
        took = time.monotonic() - t0
        if first:
            # initdb ran with --no-sync: put the fresh cluster on the disk, as an
            # installed one would be, before any cut.
            self.fs.checkpoint()
        self._postmaster = self.pg.pid()
        self.boots += 1
        return took

    def url(self, database: str) -> str:
        assert self.pg is not None
        return self.pg.url(database)

    def arm(self, fault: Fault) -> None:
        self.fs.arm(fault)

    def fault_path(self, relative: str) -> str:
        """The path LazyFS matches faults against, for a file of the data directory."""
        return self.fs.fault_path(f"data/{relative}")

    def power_cut(self) -> None:
        """The storage goes (unsynced writes lost), then every server process dies."""
        self.fs.power_cut()
        self._kill_server()

    def _kill_server(self) -> None:
        pid = self._postmaster
        if pid is None:
            return
        pids = [pid, *_children(pid)]
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._postmaster = None

    def close(self) -> None:
        try:
            self.power_cut()
        finally:
            self.fs.remove_link()
            if self.pg is not None:
                shutil.rmtree(self.pg.root, ignore_errors=True)
