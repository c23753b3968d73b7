"""Tests that need root or system tools skip on a developer's machine but fail in CI
(``CI`` set), so a CI machine missing them cannot pass by skipping."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason}: required when CI is set")
    pytest.skip(reason)
