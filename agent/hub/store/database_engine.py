"""SQLAlchemy engines for the hub database: SQLite files made as the crops they hold
require, PostgreSQL through psycopg 3.

SQLite files get mode 0600 (SQLite gives its -wal and -shm files the database file's
mode) in a 0700 folder if it is new, ``journal_mode=WAL`` (readers never block the
writer), ``synchronous=FULL`` (a commit survives a power cut), ``secure_delete=ON``
(deleted crops are overwritten with zeros, not left in free pages), ``foreign_keys=ON``,
``temp_store=MEMORY`` (sorts and temporary tables never spill crops into temporary
files) and a 30 s busy timeout. A transaction run with the ``WRITE_OPTION`` execution
option starts with ``BEGIN IMMEDIATE``, so two writers never deadlock upgrading read
locks; readers use a plain ``BEGIN`` and see a snapshot.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from agent.errors import LfrError
from agent.hub.store.database_url import StoreUrl

BUSY_TIMEOUT_MS = 30_000
#: The execution option that makes a transaction a writer (``BEGIN IMMEDIATE`` on SQLite).
WRITE_OPTION = "lfr_write"
_WAL_SWITCH_TIMEOUT_S = 30.0


class StoreError(LfrError):
    """The hub database cannot be opened or used."""


def create_store_engine(url: StoreUrl) -> Engine:
    """The engine for ``url``: a SQLite file (created 0600) or PostgreSQL."""
    if url.sqlite_path is not None:
        return _sqlite_engine(url.sqlite_path)
    return _postgres_engine(url.url)


def _sqlite_engine(path: Path) -> Engine:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Face crops live here: operator-only, and SQLite gives its -wal and -shm files
        # the same mode as the database file.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:
        raise StoreError(f"hub database {path}: cannot open ({exc.strerror or exc})") from exc
    engine = create_engine(
        URL.create("sqlite", database=str(path)),
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Transactions are begun explicitly below (pysqlite's own handling would begin
        # them late and never IMMEDIATE).
        dbapi_conn.isolation_level = None
        for pragma in (
            f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
            "PRAGMA synchronous=FULL",
            "PRAGMA secure_delete=ON",
            "PRAGMA foreign_keys=ON",
            "PRAGMA temp_store=MEMORY",
        ):
            dbapi_conn.execute(pragma)
        _ensure_wal(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writer = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def _ensure_wal(dbapi_conn: sqlite3.Connection) -> None:
    # Switching to WAL takes an exclusive lock that SQLite's busy handler does not wait
    # for; several workers opening a new file at once retry briefly.
    deadline = time.monotonic() + _WAL_SWITCH_TIMEOUT_S
    while True:
        try:
            if dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _postgres_engine(url: URL) -> Engine:
    try:
        import psycopg  # noqa: F401  (only to name the missing driver clearly)
    except ImportError as exc:
        raise StoreError(
            "store url postgresql://…: the PostgreSQL driver is not installed "
            "(pip install 'lfr-edge-agent[postgresql]')"
        ) from exc
    # pre_ping: after a PostgreSQL restart the pooled connections are dead; each is
    # tested and replaced when taken from the pool instead of failing one request.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def describe_error(exc: BaseException) -> str:
    """The driver's one-line reason for a database failure, without SQL text or values."""
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
