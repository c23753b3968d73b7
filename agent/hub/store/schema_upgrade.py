"""Bring a hub database to the newest schema revision when it is opened.

Alembic runs the revisions in ``migrations/versions/`` on one connection, in one
transaction, under a lock several workers opening the database at once all wait for
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock). The first
to get the lock upgrades; the others find the newest revision and go on. A failure
rolls everything back: the database stays at its old revision, whole.

A SQLite file made before migrations existed is recognised (``legacy_sqlite``), brought
to the baseline and stamped, then upgraded like any other. A database stamped with a
revision this program does not know (a newer ``lfr-hub`` upgraded it) is refused.
Revisions only go forward; a downgrade means restoring a backup.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from agent.hub.store import legacy_sqlite
from agent.hub.store.database_engine import WRITE_OPTION, StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001_baseline"
#: The advisory lock every hub process takes to migrate a PostgreSQL database
#: (an arbitrary 63-bit number: "lfr-mig" in ASCII).
MIGRATION_LOCK_KEY = 0x6C66722D6D6967


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest revision this program ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise StoreError("hub database migrations: no revision found")
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    script = ScriptDirectory.from_config(_config())
    return frozenset(r.revision for r in script.walk_revisions())


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade_schema(engine: Engine, *, where: str) -> None:
    """Upgrade the database of ``engine`` to ``head_revision()`` unless it is there
    already; ``where`` names it in errors."""
    head = head_revision()
    with engine.connect() as conn, conn.begin():
        if current_revision(conn) == head:
            return
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        if sqlite:
            # Rebuilding a table drops the old one, which with foreign keys on would
            # cascade to every crop and adjudication; the check below stands in for them.
            assert driver is not None
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                if not sqlite:
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                _upgrade_locked(conn, head, sqlite=sqlite, where=where)
        finally:
            if sqlite:
                assert driver is not None
                driver.execute("PRAGMA foreign_keys=ON")


def _upgrade_locked(conn: Connection, head: str, *, sqlite: bool, where: str) -> None:
    current = current_revision(conn)
    if current == head:
        return  # another worker upgraded it while this one waited for the lock
    if current is not None and current not in known_revisions():
        raise StoreError(
            f"hub database {where}: schema revision {current!r} is newer than this "
            "lfr-hub knows; run the lfr-hub version that upgraded it"
        )
    if current is None and sqlite and legacy_sqlite.is_legacy(conn):
        legacy_sqlite.adopt(conn)
        command.stamp(_config(conn), BASELINE)
    command.upgrade(_config(conn), "head")
    if sqlite:
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreError(
                f"hub database {where}: schema upgrade would break {len(broken)} "
                "references; nothing was changed"
            )
