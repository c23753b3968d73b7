"""The hub database schemas written by the code before migrations existed, verbatim
from its history, so upgrade tests start from files that code really made.

Each was created with ``CREATE TABLE IF NOT EXISTS`` and no version table:

- ``FIRST``: the first store (fb950c1): no ack secrets, no purges, sequence numbers
  unique per device;
- ``WITH_PURGES``: ack secrets, purge log and tombstones (18fb07f), sequences still
  unique per device;
- ``LAST``: sequences unique per (device, signing key) (39530cb, the last before
  migrations);
- ``REPORTS``: the deployment report table, created by the report store on its own.
"""

FIRST = """
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
    UNIQUE (device_id, seq)
);
CREATE INDEX IF NOT EXISTS alerts_received ON alerts (received_at);
CREATE TABLE IF NOT EXISTS crops (
    alert_id TEXT NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('probe', 'scene')),
    jpeg     BLOB NOT NULL,
    PRIMARY KEY (alert_id, kind)
);
CREATE TABLE IF NOT EXISTS adjudications (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id  TEXT NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    outcome   TEXT NOT NULL,
    by_ref    TEXT NOT NULL,
    at        REAL NOT NULL
);
"""

WITH_PURGES = """
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
    UNIQUE (device_id, seq)
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
    UNIQUE (device_id, seq)
);
CREATE TABLE IF NOT EXISTS adjudications (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id  TEXT NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    outcome   TEXT NOT NULL,
    by_ref    TEXT NOT NULL,
    at        REAL NOT NULL
);
"""

LAST = """
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
"""

REPORTS = """
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
