"""PostgreSQL for the tests: one private cluster per test session, started from the
Debian package on a Unix socket (``hil/local_postgres.py``) and removed at the end;
a fresh empty database for every test that asks.

Fixtures (exposed by ``tests/conftest.py``)::

    def test_x(postgres_url):           # a new database on the session's cluster
        store = AlertStore(postgres_url)

    def test_y(hub_db_url):             # runs twice: [sqlite] and [postgresql]
        store = AlertStore(hub_db_url)

    def test_z(postgres_cluster):       # the cluster itself: restart(), kill(), data_dir
        ...

Where PostgreSQL is not installed the PostgreSQL cases skip, and fail when ``CI`` is
set (``support.ci_required``).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.local_postgres import LocalPostgres, postgres_bin
from support.ci_required import unavailable

__all__ = ["hub_db_url", "postgres_cluster", "postgres_url"]

BACKENDS = ("sqlite", "postgresql")
_names = itertools.count(1)


def _temp_parent() -> Path | None:
    # Beside the session's other temporary folders when pytest was told where
    # (PYTEST_DEBUG_TEMPROOT), so parallel runs never share a folder; the postgres user
    # must be able to reach it, so it is made world-traversable (not readable).
    given = os.environ.get("PYTEST_DEBUG_TEMPROOT")
    if not given:
        return None
    parent = Path(given)
    parent.mkdir(parents=True, exist_ok=True)
    return parent


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[LocalPostgres]:
    """The session's private PostgreSQL cluster (started on first use)."""
    if postgres_bin() is None:
        unavailable("PostgreSQL server not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="lfr-pg-", dir=_temp_parent()))
    cluster = LocalPostgres(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def postgres_url(postgres_cluster: LocalPostgres) -> Iterator[str]:
    """A new, empty database on the session's cluster; dropped after the test."""
    if not postgres_cluster.running():
        postgres_cluster.start()  # a test that stopped or killed it leaves it down
    name = f"t{os.getpid()}_{next(_names)}"
    url = postgres_cluster.create_database(name)
    try:
        yield url
    finally:
        if not postgres_cluster.running():
            postgres_cluster.start()
        postgres_cluster.drop_database(name)


@pytest.fixture(params=BACKENDS)
def hub_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL for a new hub database, once per backend: a SQLite file, then a
    PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "hub.db")
    url: str = request.getfixturevalue("postgres_url")
    return url
