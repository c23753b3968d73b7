"""``INSERT … ON CONFLICT`` for the hub's two databases.

SQLite and PostgreSQL spell the clause the same way, but SQLAlchemy builds it only from
each dialect's own ``insert``; every store that keeps a row once (or replaces it) asks
here, by the name of the dialect its connection speaks.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite


def conflict_insert(dialect_name: str, table: Any) -> Any:
    """An insert into ``table`` that can take ``on_conflict_do_nothing`` or
    ``on_conflict_do_update``, in the dialect named (``"postgresql"`` or ``"sqlite"``)."""
    return (postgresql if dialect_name == "postgresql" else sqlite).insert(table)


def conflict_insert_on(db: Connection, table: Any) -> Any:
    """``conflict_insert`` in the dialect of the connection ``db``."""
    return conflict_insert(db.dialect.name, table)
