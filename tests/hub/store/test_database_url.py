"""Store URLs: plain paths keep working, sqlite:/// and postgresql:// are understood,
anything else is a one-line error, and a password never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import UsageError
from agent.hub.store.database_url import parse_store_url


def test_plain_paths_and_sqlite_urls_name_a_file(tmp_path: Path) -> None:
    for given in (tmp_path / "a.db", str(tmp_path / "a.db"), f"sqlite:///{tmp_path}/a.db"):
        url = parse_store_url(given)
        assert (url.dialect, url.sqlite_path) == ("sqlite", tmp_path / "a.db")
        assert url.display() == str(tmp_path / "a.db")
    relative = parse_store_url("sqlite:///var/hub.db")
    assert relative.sqlite_path == Path("var/hub.db")


def test_postgresql_urls_use_psycopg_and_hide_the_password() -> None:
    for given in (
        "postgresql://hub:pw@db.example/lfr",
        "postgres://hub:pw@db.example/lfr",
        "postgresql+psycopg://hub:pw@db.example/lfr",
    ):
        url = parse_store_url(given)
        assert url.dialect == "postgresql" and url.sqlite_path is None
        assert url.url.drivername == "postgresql+psycopg"
        assert "pw" not in url.display() and "db.example/lfr" in url.display()
    socket = parse_store_url("postgresql://hub@/lfr?host=/run/postgresql")
    assert socket.url.query == {"host": "/run/postgresql"}


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("", "empty"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("mysql://hub:topsecret@db/lfr", "only a file path"),
        ("postgresql+psycopg2://hub@db/lfr", "only a file path"),
        ("postgresql://hub:topsecret@db.example", "name the database"),
        ("http://[::1:80/x", "not a valid URL"),
    ],
)
def test_bad_urls_are_one_line_errors_naming_the_problem(given: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem) as err:
        parse_store_url(given)
    assert "\n" not in str(err.value) and "topsecret" not in str(err.value)
