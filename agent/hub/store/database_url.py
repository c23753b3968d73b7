"""Store URLs: what ``[store] url`` and every ``--db`` take, parsed and checked.

- a plain path (``/var/lib/lfr-hub/alerts.db``) or ``sqlite:///relative.db`` /
  ``sqlite:////absolute.db``: one SQLite file (the embedded default);
- ``postgresql://user@host/dbname`` (``postgresql+psycopg://`` likewise; a local socket as
  ``postgresql://user@/dbname?host=/run/postgresql``): PostgreSQL through psycopg 3.
  Keep passwords out of the URL (use ``~/.pgpass`` or ``PGPASSFILE``); a password given
  anyway is never printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError

from agent.errors import UsageError

POSTGRES_DRIVER = "postgresql+psycopg"


@dataclass(frozen=True)
class StoreUrl:
    """A parsed store URL: which engine, and how to show it without secrets."""

    url: URL
    #: The SQLite file, or None for PostgreSQL.
    sqlite_path: Path | None

    @property
    def dialect(self) -> str:
        return "sqlite" if self.sqlite_path is not None else "postgresql"

    def display(self) -> str:
        """The URL for messages and logs: the file path, or the URL without its password."""
        if self.sqlite_path is not None:
            return str(self.sqlite_path)
        return self.url.render_as_string(hide_password=True)


def parse_store_url(value: str | Path) -> StoreUrl:
    """A ``StoreUrl`` from a path or URL; ``UsageError`` naming the problem otherwise."""
    if isinstance(value, Path) or "://" not in value:
        text = str(value)
        if not text.strip():
            raise UsageError("store url: empty (give a file path or a postgresql:// URL)")
        path = Path(text).expanduser()
        return StoreUrl(URL.create("sqlite", database=str(path)), path)
    try:
        url = make_url(value)
    except (ArgumentError, ValueError) as exc:
        raise UsageError(f"store url {_shown(value)!r}: not a valid URL") from exc
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        if not url.database or url.database == ":memory:":
            raise UsageError(
                "store url: an in-memory SQLite database would lose every alert; "
                "give a file (sqlite:///PATH)"
            )
        path = Path(url.database).expanduser()
        return StoreUrl(URL.create("sqlite", database=str(path), query=url.query), path)
    if url.drivername in ("postgresql", "postgres", POSTGRES_DRIVER):
        if not url.database:
            raise UsageError(
                f"store url {_shown(value)!r}: name the database (postgresql://USER@HOST/DBNAME)"
            )
        return StoreUrl(url.set(drivername=POSTGRES_DRIVER), None)
    raise UsageError(
        f"store url {_shown(value)!r}: only a file path, sqlite:///PATH and "
        "postgresql://… are supported"
    )


def _shown(value: str) -> str:
    """A URL as it may appear in an error: at most 80 characters, password removed."""
    try:
        return make_url(value).render_as_string(hide_password=True)[:80]
    except (ArgumentError, ValueError):
        return value.split("@")[-1][:80]
