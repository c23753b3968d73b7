"""Device keys are generated on the device, 0600, never silently replaced."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.trust.device_keys import (
    EXCHANGE_KEY_FILE,
    INCOMPLETE_MARKER,
    KEY_FILES,
    SIGNING_KEY_FILE,
    generate_device_keys,
    generation_interrupted,
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


def test_a_generation_cut_short_is_replaced_not_refused(tmp_path: Path) -> None:
    # Power-cut crash point "enrolment public key after rename": the marker and the
    # signing key survived, the exchange key was never written.
    generate_device_keys(tmp_path)
    (tmp_path / INCOMPLETE_MARKER).write_bytes(b"device key generation in progress\n")
    for name in (EXCHANGE_KEY_FILE, "device-x25519-pub.pem"):
        (tmp_path / name).unlink()
    assert generation_interrupted(tmp_path)
    made = generate_device_keys(tmp_path)
    assert not generation_interrupted(tmp_path)
    loaded = load_device_keys(tmp_path)
    assert loaded.signing_public == made.signing_public == load_device_signing_public(tmp_path)
    assert loaded.exchange_public == made.exchange_public


def test_a_finished_generation_leaves_no_marker(tmp_path: Path) -> None:
    generate_device_keys(tmp_path)
    assert not (tmp_path / INCOMPLETE_MARKER).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(KEY_FILES)
