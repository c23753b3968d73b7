"""The passphrase test operators' keys are sealed under (the suite seals at the low
key-derivation cost tests/conftest.py sets, so each seal takes milliseconds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.cli.hub_commands.passphrase_args import PASSPHRASE_ENV

PASSPHRASE = "test operator passphrase"


def passphrase_file(folder: Path, passphrase: str = PASSPHRASE) -> Path:
    """A 0600 file holding ``passphrase``, for ``--passphrase-file``."""
    path = folder / "operator-passphrase"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(passphrase + "\n")
    return path


@pytest.fixture
def operator_passphrase(monkeypatch: pytest.MonkeyPatch) -> str:
    """Commands run in this test read the operator passphrase from the environment."""
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    return PASSPHRASE
