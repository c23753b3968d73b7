"""The hub's unit (systemd/lfr-hub.service), checked with systemd's own tools offline:
exposure at most 1.2, ``verify`` clean, and its paths the hub config's defaults."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.ci_required import unavailable

from agent.hub.service.hub_config import DEFAULT_HUB_CONFIG_PATH, HubConfig

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "lfr-hub.service"
MAX_EXPOSURE = 1.2


@pytest.fixture(autouse=True)
def analyze() -> None:
    if shutil.which("systemd-analyze") is None:
        unavailable("systemd-analyze not installed")


def exposure_of(unit: Path) -> float:
    res = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", res.stdout)
    assert match, f"no exposure in output: {res.stdout[-500:]} {res.stderr[-500:]}"
    return float(match.group(1))


def test_exposure_is_at_most_1_2(tmp_path: Path) -> None:
    exposure = exposure_of(UNIT)
    print(f"systemd-analyze security exposure (lfr-hub.service): {exposure}")
    assert exposure <= MAX_EXPOSURE
    weakened = tmp_path / "lfr-hub.service"
    weakened.write_text(
        re.sub(
            r"(?m)^(PrivateTmp|ProtectSystem|ProtectHome|NoNewPrivileges)=.*$", "", UNIT.read_text()
        )
    )
    assert exposure_of(weakened) > MAX_EXPOSURE  # the check can fail


def test_verify_reports_nothing(tmp_path: Path) -> None:
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={shutil.which('true')}", UNIT.read_text())
    for name, body in (("good", text), ("typo", text.replace("ProtectSystem=", "ProtectSytem="))):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "lfr-hub.service").write_text(body)
        res = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", "./lfr-hub.service"],
            capture_output=True,
            text=True,
            check=False,
            cwd=folder,
            timeout=120,
        )
        if name == "good":
            assert res.returncode == 0 and res.stderr.strip() == ""
        else:
            assert "ProtectSytem" in res.stderr


def test_unit_runs_serve_with_the_default_config_and_paths() -> None:
    text = UNIT.read_text()
    assert f"lfr-hub serve --config {DEFAULT_HUB_CONFIG_PATH}" in text
    defaults = HubConfig()
    state = Path("/var/lib") / re.search(r"(?m)^StateDirectory=(\S+)", text).group(1)  # type: ignore[union-attr]
    config = Path("/etc") / re.search(r"(?m)^ConfigurationDirectory=(\S+)", text).group(1)  # type: ignore[union-attr]
    assert Path(defaults.database.url).is_relative_to(state)
    assert defaults.audit.log.is_relative_to(state)
    for key in (defaults.console.tls_cert, defaults.broker.alert_key, defaults.audit.signing_key):
        assert key.is_relative_to(config)
