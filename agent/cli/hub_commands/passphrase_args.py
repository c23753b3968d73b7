"""Where a command gets an operator's passphrase from.

In order: ``--passphrase-file PATH`` (one line, the file 0600 or stricter), the
environment variable ``LFR_OPERATOR_PASSPHRASE`` (for scripts and test rigs), or a
prompt on the terminal (preferred: the passphrase is then in no file and no process
environment). A new passphrase is asked for twice at the prompt.
"""

from __future__ import annotations

import argparse
import getpass
import os
import stat
import sys
from pathlib import Path

from agent.errors import UsageError

PASSPHRASE_ENV = "LFR_OPERATOR_PASSPHRASE"
NEW_PASSPHRASE_ENV = "LFR_OPERATOR_NEW_PASSPHRASE"
_MAX_FILE_BYTES = 4096


def add_passphrase_arg(p: argparse.ArgumentParser, what: str = "the operator's") -> None:
    p.add_argument(
        "--passphrase-file",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"file holding {what} passphrase (mode 0600); default: "
        f"${PASSPHRASE_ENV}, else a prompt",
    )


def _from_file(path: Path, flag: str) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise UsageError(f"{flag} {path}: mode {mode:04o} is too open (want 0600)")
        with path.open("rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot read ({exc.strerror})") from exc
    if len(data) > _MAX_FILE_BYTES:
        raise UsageError(f"{flag} {path}: too large for a passphrase")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UsageError(f"{flag} {path}: not UTF-8 text") from exc
    if not lines or not lines[0]:
        raise UsageError(f"{flag} {path}: empty")
    return lines[0]


def _prompt(prompt: str, confirm: bool) -> str:
    if not sys.stdin.isatty():
        raise UsageError(
            f"{prompt.rstrip(': ')}: no terminal to ask on "
            f"(give --passphrase-file or ${PASSPHRASE_ENV})"
        )
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != first:
        raise UsageError("passphrase: the two entries differ")
    return first


def read_passphrase(
    file: Path | None,
    operator: str,
    *,
    new: bool = False,
    flag: str = "--passphrase-file",
    env: str = PASSPHRASE_ENV,
) -> str:
    """The passphrase of ``operator`` from ``file``, ``env`` or the terminal."""
    if file is not None:
        return _from_file(file, flag)
    given = os.environ.get(env)
    if given:
        return given
    word = "new passphrase" if new else "passphrase"
    return _prompt(f"{word} of operator {operator}: ", confirm=new)
