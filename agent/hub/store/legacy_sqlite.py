"""Hub database files made before migrations existed: recognised and brought to the
baseline revision (``0001_baseline``) so Alembic can take them from there.

Those files have no ``alembic_version`` table; the code of the time created its tables
with ``CREATE TABLE IF NOT EXISTS`` and patched two older layouts in place: alerts
without an ``ack_secret`` column, and alerts and tombstones whose sequence numbers were
unique per device instead of per (device, signing key). ``adopt`` does the same, once,
inside the caller's transaction (foreign keys off, so rebuilding ``alerts`` cannot
cascade to its crops and adjudications); the caller then stamps the baseline.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, inspect

from agent.trust.signed_document import key_id as public_key_id

#: Tables any pre-migration file may hold (the report table was created on its own).
LEGACY_TABLES = frozenset(
    {"device_keys", "alerts", "crops", "purge_log", "purged_alerts", "adjudications",
     "deployment_reports"}
)  # fmt: skip

# The schema as the pre-migration code created it (its text, kept verbatim).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS device_keys (
    device_id   TEXT PRIMARY KEY,
    public_pem  TEXT NOT NULL,
    added_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id        TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    deployment_id   TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    sealed_at       REAL NOT NULL,
    received_at     REAL NOT NULL,
    watchlist_entry TEXT NOT NULL,
    score           REAL NOT NULL,
    threshold       REAL NOT NULL,
    model_id        TEXT NOT NULL,
    track_id        INTEGER NOT NULL,
    first_seen      REAL NOT NULL,
    decided_at      REAL NOT NULL,
    quality_json    TEXT NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    ack_secret      BLOB,
    key_id          TEXT NOT NULL DEFAULT '',
    UNIQUE (device_id, key_id, seq)
);
CREATE INDEX IF NOT EXISTS alerts_received ON alerts (received_at);
CREATE TABLE IF NOT EXISTS crops (
    alert_id TEXT NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('probe', 'scene')),
    jpeg     BLOB NOT NULL,
    PRIMARY KEY (alert_id, kind)
);
CREATE TABLE IF NOT EXISTS purge_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           REAL NOT NULL,
    older_than_s REAL NOT NULL,
    cutoff       REAL NOT NULL,
    alerts       INTEGER NOT NULL,
    by_ref       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS purged_alerts (
    alert_id        TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    ack_secret      BLOB,
    purge_id        INTEGER NOT NULL REFERENCES purge_log (id),
    key_id          TEXT NOT NULL DEFAULT '',
    UNIQUE (device_id, key_id, seq)
);
CREATE TABLE IF NOT EXISTS adjudications (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id  TEXT NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    outcome   TEXT NOT NULL,
    by_ref    TEXT NOT NULL,
    at        REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deployment_reports (
    device_id TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    activation_sequence INTEGER NOT NULL,
    received_at REAL NOT NULL,
    body TEXT NOT NULL,
    envelope BLOB NOT NULL,
    PRIMARY KEY (device_id, deployment_id, activation_sequence)
)
"""


def is_legacy(conn: Connection) -> bool:
    """A file with hub tables but no version table: made before migrations."""
    names = set(inspect(conn).get_table_names())
    return "alembic_version" not in names and bool(names & LEGACY_TABLES)


def adopt(conn: Connection) -> None:
    """Bring a pre-migration file to the baseline layout (inside the caller's transaction)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.exec_driver_sql(statement)
    if "ack_secret" not in _columns(conn, "alerts"):
        # A database made before acks carried a proof: same place as new ones.
        conn.exec_driver_sql("ALTER TABLE alerts ADD COLUMN ack_secret BLOB")
    _add_key_ids(conn)


def _columns(conn: Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.exec_driver_sql(f"PRAGMA table_info({table})")]


def _add_key_ids(conn: Connection) -> None:
    """Rebuild tables from before per-key sequences (SQLite cannot change a UNIQUE
    constraint in place); their rows get the device key enrolled now."""
    kids = {}
    for device, pem in conn.exec_driver_sql("SELECT device_id, public_pem FROM device_keys"):
        key = serialization.load_pem_public_key(str(pem).encode("ascii"))
        if isinstance(key, Ed25519PublicKey):
            kids[str(device)] = public_key_id(key)
    for table in ("alerts", "purged_alerts"):
        columns = _columns(conn, table)
        if "key_id" in columns:
            continue
        create = next(
            st for st in _SCHEMA.split(";") if f"CREATE TABLE IF NOT EXISTS {table} (" in st
        )
        conn.exec_driver_sql(create.replace(f"IF NOT EXISTS {table} (", f"{table}_rekeyed ("))
        cols = ", ".join(columns)
        conn.exec_driver_sql(f"INSERT INTO {table}_rekeyed ({cols}) SELECT {cols} FROM {table}")
        for device, kid in kids.items():
            conn.exec_driver_sql(
                f"UPDATE {table}_rekeyed SET key_id = ? WHERE device_id = ?", (kid, device)
            )
        conn.exec_driver_sql(f"DROP TABLE {table}")
        conn.exec_driver_sql(f"ALTER TABLE {table}_rekeyed RENAME TO {table}")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS alerts_received ON alerts (received_at)")
