"""Device keys are generated on the device, 0600, never silently replaced."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.trust.device_keys import (
    EXCHANGE_KEY_FILE,
    SIGNING_KEY_FILE,
    generate_device_keys,
    load_device_keys,
    load_device_signing_public,
)
from agent.trust.key_files import KeyFileError


def test_generate_then_load(tmp_path: Path) -> None:
    made = generate_device_keys(tmp_path)
    for name in (SIGNING_KEY_FILE, EXCHANGE_KEY_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    loaded = load_device_keys(tmp_path)
    assert loaded.signing_public == made.signing_public
    assert loaded.exchange_public == made.exchange_public
    assert load_device_signing_public(tmp_path) == made.signing_public


def test_existing_keys_are_not_replaced(tmp_path: Path) -> None:
    generate_device_keys(tmp_path)
    with pytest.raises(KeyFileError, match="already exists"):
        generate_device_keys(tmp_path)


def test_readable_private_key_is_refused(tmp_path: Path) -> None:
    generate_device_keys(tmp_path)
    (tmp_path / SIGNING_KEY_FILE).chmod(0o640)
    with pytest.raises(KeyFileError, match="too open"):
        load_device_keys(tmp_path)
