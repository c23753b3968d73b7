"""The console's accounts and sessions.

A user's password is kept only as its argon2id hash. A session is kept only as the
SHA-256 of its cookie token, so a copy of the database does not hold a usable
session. The TOTP secret is sealed under a key derived from the user's password
(console_accounts); see docs/security.md for what a stolen hub disk gains.
"""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, Integer, Table

from agent.hub.store.metadata import Seconds, Str, metadata

ROLES = ("operator", "supervisor", "auditor")

console_users = Table(
    "console_users",
    metadata,
    Column("username", Str, primary_key=True),
    Column("role", Str, nullable=False),
    Column("password_hash", Str, nullable=False),
    Column("totp_secret", Str, nullable=False),
    # The last TOTP time step accepted: a code is never accepted twice.
    Column("totp_last_step", Integer, nullable=False, server_default="0"),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", Seconds, nullable=False, server_default="0"),
    Column("created_at", Seconds, nullable=False),
    CheckConstraint("role IN ('operator', 'supervisor', 'auditor')", name="role"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_sha256", Str, primary_key=True),
    Column(
        "username",
        Str,
        ForeignKey("console_users.username", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("csrf_token", Str, nullable=False),
    Column("created_at", Seconds, nullable=False),
    Column("last_seen", Seconds, nullable=False),
)
