"""The hub database: one engine (SQLite, the embedded default, or PostgreSQL for several
hub workers) opened from a store URL (``database_url.py``) and brought to the newest
schema revision (``schema_upgrade.py``) before anything uses it.

Every store of the hub (alerts, reports, and the tables other rooms add) takes one
``HubDatabase`` and shares it; ``write()`` and ``read()`` are the transactions they use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from agent.hub.store.change_feed import PENDING_KEY, Change, ChangeFeed
from agent.hub.store.database_engine import (
    WRITE_OPTION,
    StoreError,
    create_store_engine,
    describe_error,
)
from agent.hub.store.database_url import StoreUrl, parse_store_url
from agent.hub.store.schema_upgrade import upgrade_schema
from agent.hub.store.transient_retry import RETRY_BUDGET_S, StoreUnavailable, retry_transient

__all__ = ["HubDatabase", "StoreError", "StoreUrl", "parse_store_url"]


class HubDatabase:
    """The engine of one hub database, schema at the newest revision once constructed.

    Thread-safe (a connection pool); one per process is enough, shared by every store.
    """

    def __init__(
        self,
        target: str | Path | StoreUrl,
        *,
        upgrade: bool = True,
        connect_wait_s: float = RETRY_BUDGET_S,
    ) -> None:
        """``connect_wait_s``: how long to keep trying while the database is unreachable
        (a worker started while PostgreSQL restarts waits for it)."""
        self.url = target if isinstance(target, StoreUrl) else parse_store_url(target)
        self.engine = create_store_engine(self.url)
        #: Announce and follow changes (``change_feed.py``).
        self.changes = ChangeFeed(self.engine, sqlite_path=self.url.sqlite_path)
        if not upgrade:
            return
        try:
            retry_transient(
                lambda: upgrade_schema(self.engine, where=self.where),
                what=f"hub database {self.where}",
                budget_s=connect_wait_s,
            )
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise StoreError(
                f"hub database {self.where}: cannot open ({describe_error(exc)})"
            ) from exc
        except StoreUnavailable as exc:
            self.engine.dispose()
            reason = describe_error(exc.__cause__ or exc)
            raise StoreError(f"hub database {self.where}: cannot open ({reason})") from exc
        except BaseException:
            self.engine.dispose()
            raise

    @property
    def where(self) -> str:
        """The database as messages name it (file path, or URL without password)."""
        return self.url.display()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.url.dialect

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A writing transaction, committed when the block ends (rolled back on error);
        changes it announced (``changes.emit``) are delivered once it has committed."""
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            conn.info.pop(PENDING_KEY, None)
            try:
                with conn.begin():
                    yield conn
                committed: list[Change] = conn.info.pop(PENDING_KEY, [])
            finally:
                conn.info.pop(PENDING_KEY, None)
        self.changes.committed(committed)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A reading transaction: one consistent snapshot for the whole block."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[Any]:
        """The driver's connection outside any transaction (VACUUM, checkpoints, pragmas)."""
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn.connection.driver_connection

    def close(self) -> None:
        self.changes.close()
        self.engine.dispose()
