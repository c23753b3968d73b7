"""A private PostgreSQL cluster from the Debian package, for the tests and the fleet
simulator: ``initdb`` into a fresh folder, a server on a Unix socket only (no TCP
port to collide with anyone), start / stop / restart / kill, removed afterwards.

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres``
user the package creates (its folder is made under /tmp, which that user can reach).

The server runs with ``wal_recycle = off`` as docs/privacy.md asks of a hub database:
write-ahead log segments that held purged alerts are deleted, not renamed for re-use
with the old bytes inside.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

PG_ROOT = Path(os.environ.get("LFR_POSTGRES_ROOT", "/usr/lib/postgresql"))
SUPERUSER = "postgres"
DEFAULT_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "''",
    "wal_recycle": "off",
    "max_connections": "300",
    "log_min_messages": "warning",
}


class PostgresError(RuntimeError):
    """The local cluster could not be created, started or used."""


def postgres_bin() -> Path | None:
    """The newest installed server's bin folder (None when none is installed)."""
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


class LocalPostgres:
    """One private cluster: ``start()`` (initdb on first use), ``url(db)``, ``stop()``."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        settings: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        found = postgres_bin()
        if found is None:
            raise PostgresError(
                f"no PostgreSQL server under {PG_ROOT} (apt-get install postgresql)"
            )
        self.bin = found
        self.as_root = os.geteuid() == 0
        self.root = root if root is not None else Path(tempfile.mkdtemp(prefix="lfr-pg-"))
        self.root.mkdir(parents=True, exist_ok=True)
        # The data directory may live elsewhere (on LazyFS, for power cuts); the socket
        # and the log stay under ``root``: a FUSE folder cannot hold a Unix socket.
        self.data_dir = data_dir if data_dir is not None else self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log_path = self.root / "server.log"
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.socket_dir.mkdir(exist_ok=True)
        if self.as_root:
            shutil.chown(self.root, SUPERUSER, SUPERUSER)
            shutil.chown(self.socket_dir, SUPERUSER, SUPERUSER)
        os.chmod(self.root, 0o700)

    # ---- commands ---------------------------------------------------------------
    def _run(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        words = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_root:
            words = ["runuser", "-u", SUPERUSER, "--", *words]
        res = subprocess.run(words, capture_output=True, text=True, check=False, timeout=120)
        if check and res.returncode != 0:
            raise PostgresError(
                f"{argv[0]} failed ({res.returncode}): {(res.stderr or res.stdout).strip()[:400]}"
            )
        return res

    def _options(self) -> str:
        opts = [f"-k {self.socket_dir}"]
        opts += [f"-c {k}={v}" for k, v in self.settings.items()]
        return " ".join(opts)

    def start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            # Made here (not by initdb) so it belongs to the server's user even on a
            # filesystem whose files its server process creates as root (LazyFS).
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.as_root:
                shutil.chown(self.data_dir, SUPERUSER, SUPERUSER)
            os.chmod(self.data_dir, 0o700)
            self._run(
                ["initdb", "-D", str(self.data_dir), "-A", "trust", "-U", SUPERUSER,
                 "--no-sync", "-E", "UTF8", "--locale=C"]
            )  # fmt: skip
        self._run(
            ["pg_ctl", "-D", str(self.data_dir), "-o", self._options(), "-l",
             str(self.log_path), "-w", "-t", "60", "start"]
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run(["pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop"])

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash): the next ``start`` recovers from the WAL."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self._alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            # Its backends notice the postmaster is gone and exit on their own.
            time.sleep(0.5)

    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and self._alive(pid)

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def cleanup(self) -> None:
        """Stop the server (immediately) and remove the cluster folder."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- databases --------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        """The store URL of one database of this cluster (Unix socket, superuser)."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql; its output (tuples only, unaligned)."""
        res = self._run(
            ["psql", "-h", str(self.socket_dir), "-U", SUPERUSER, "-d", database,
             "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]
        )  # fmt: skip
        return res.stdout

    def create_database(self, name: str) -> str:
        """A new empty database; its store URL."""
        if not name.replace("_", "").isalnum():
            raise PostgresError(f"database name {name!r}: letters, digits and _ only")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
