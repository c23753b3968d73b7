"""After a retention purge, remove the deleted rows' bytes from the database files too.

A committed DELETE is not the end of the data on disk:

- **SQLite** (``secure_delete=ON``) overwrites the freed pages with zeros, but in WAL
  mode the pages holding the crops are still in the ``-wal`` file until a checkpoint
  copies the zeroed pages back. A reader on an older snapshot can keep a checkpoint from
  completing: it is retried briefly and, failing that, at the next purge (logged).
- **PostgreSQL** leaves deleted rows as dead tuples in the table and its TOAST table
  (where crops live) until a vacuum, and even a plain vacuum only marks their space
  free. ``VACUUM FULL`` writes the purged tables afresh and unlinks the old files. The
  rows were also written to the write-ahead log when stored; a checkpoint and a WAL
  segment switch let PostgreSQL remove those segments (with ``wal_recycle = off`` it
  deletes them instead of renaming them for re-use with the old bytes inside). That
  needs the ``pg_checkpoint`` role and EXECUTE on ``pg_switch_wal()``; without them the
  WAL part is skipped and logged once. What no database can reach (a WAL archive, a
  standby, backups, blocks the file system freed) is documented in docs/privacy.md.

``VACUUM FULL`` locks a table while it rewrites it: intake waits. A lock timeout keeps
a busy hub from waiting long; an unfinished scrub is retried after the next purge.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

from agent.hub.store.database import HubDatabase
from agent.hub.store.database_engine import BUSY_TIMEOUT_MS

log = logging.getLogger(__name__)

_CHECKPOINT_ATTEMPTS = 3
_CHECKPOINT_WAIT_MS = 500
_CHECKPOINT_PAUSE_S = 0.2
#: Tables whose deleted rows held alert content (crops above all).
SCRUBBED_TABLES = ("crops", "alert_clips", "alerts", "adjudications")
_VACUUM_LOCK_TIMEOUT = "10s"


class PurgeScrubber:
    """Remembers an unfinished scrub and finishes it after a later purge."""

    def __init__(self, database: HubDatabase, tables: tuple[str, ...] = SCRUBBED_TABLES) -> None:
        self.database = database
        #: The tables a purge deletes from (rewritten on PostgreSQL).
        self.tables = tables
        self.pending = False
        self._wal_problem = ""

    def after_purge(self, *, deleted: int) -> bool:
        """Scrub if ``deleted`` or an earlier scrub is unfinished; True when clean."""
        if not deleted and not self.pending:
            return True
        if self.database.dialect == "sqlite":
            done = self._sqlite_checkpoint()
        else:
            done = self._postgres_scrub()
        self.pending = not done
        return done

    def _sqlite_checkpoint(self) -> bool:
        """Copy the write-ahead log into the database and truncate it; False if a reader
        kept it from completing (then the old pages, crops included, are still in -wal)."""
        problem = "a reader kept it busy"
        with self.database.autocommit() as driver:
            try:
                driver.execute(f"PRAGMA busy_timeout={_CHECKPOINT_WAIT_MS}")
                for attempt in range(_CHECKPOINT_ATTEMPTS):
                    busy, _log, _done = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    if busy == 0:
                        return True
                    if attempt + 1 < _CHECKPOINT_ATTEMPTS:
                        time.sleep(_CHECKPOINT_PAUSE_S)
            except sqlite3.Error as exc:
                problem = str(exc)
            finally:
                driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        log.warning(
            "hub database %s: checkpoint after purge incomplete (%s): purged pages stay in "
            "its -wal file until the next purge completes one",
            self.database.where,
            problem,
        )
        return False

    def _postgres_scrub(self) -> bool:
        import psycopg

        with self.database.autocommit() as driver:
            try:
                driver.execute(f"SET lock_timeout = '{_VACUUM_LOCK_TIMEOUT}'")
                for table in self.tables:
                    driver.execute(f"VACUUM (FULL) {table}")
            except psycopg.Error as exc:
                log.warning(
                    "hub database %s: rewriting the purged tables failed (%s): deleted rows "
                    "stay in the table files until the next purge completes it",
                    self.database.where,
                    _first_line(exc),
                )
                return False
            finally:
                _reset(driver)
            self._flush_wal(driver)
        return True

    def _flush_wal(self, driver: Any) -> None:
        import psycopg

        try:
            # The purged rows' insert records sit in the current segment: close it, and
            # let two checkpoints move the redo point past it so it can be removed.
            driver.execute("CHECKPOINT")
            driver.execute("SELECT pg_switch_wal()")
            driver.execute("CHECKPOINT")
        except psycopg.Error as exc:
            problem = _first_line(exc)
            if problem != self._wal_problem:  # once per reason, not at every purge
                log.warning(
                    "hub database %s: cannot checkpoint and switch the write-ahead log "
                    "(%s): purged content stays in old WAL segments until PostgreSQL "
                    "X",
                    self.database.where,
                    problem,
                )
                self._wal_problem = problem


def _reset(driver: Any) -> None:
    try:
        driver.execute("RESET lock_timeout")
    except Exception:  # the connection is gone; the pool replaces it
        log.debug("reset after scrub failed", exc_info=True)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
