"""Alembic's environment: migrations always run on the connection ``schema_upgrade``
hands over (in its transaction, under its lock), never from a URL of their own."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from agent.hub.store.all_tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("hub migrations run only through agent.hub.store.schema_upgrade")
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite changes most constraints only by rebuilding a table ("batch" mode).
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
