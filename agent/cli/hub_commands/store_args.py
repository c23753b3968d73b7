"""The hub database option every hub command that reads or writes it shares: ``--db``
takes a SQLite file path (as before) or a store URL (``sqlite:///…``,
``postgresql://…``), checked when the command line is read."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from agent.errors import UsageError
from agent.hub.store.database_url import parse_store_url

DEFAULT_DB = Path("/var/lib/lfr-hub/alerts.db")
DB_ENV = "LFR_HUB_DB"


def _store_url(text: str) -> str:
    try:
        parse_store_url(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def add_db_arg(p: argparse.ArgumentParser, what: str = "hub database") -> None:
    p.add_argument(
        "--db",
        type=_store_url,
        default=None,
        metavar="PATH|URL",
        help=f"{what}: a SQLite file or a postgresql:// URL (default: ${DB_ENV} or {DEFAULT_DB})",
    )


def db_target(args: argparse.Namespace) -> str:
    """The database the command was given: ``--db``, else ``$LFR_HUB_DB``, else the default."""
    given: str | None = args.db or os.environ.get(DB_ENV) or None
    if given is None:
        return str(DEFAULT_DB)
    parse_store_url(given)  # $LFR_HUB_DB is checked as strictly as --db
    return given


def age_arg(text: str) -> float:
    """An age such as ``31d``, ``12h`` or ``30m`` in seconds (retention, purges)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number and d, h or m, e.g. 31d")
    return float(m.group(1)) * {"d": 86400, "h": 3600, "m": 60}[m.group(2)]
