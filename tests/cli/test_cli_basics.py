"""Both programs: help reads well, version, usage errors are one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent import __version__


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("module", "prog"), [("agent.cli.agent_main", "lfr-agent"), ("agent.cli.hub_main", "lfr-hub")]
)
def test_help_and_version(module: str, prog: str) -> None:
    res = run(module, "--help")
    assert res.returncode == 0
    assert "exit codes:" in res.stdout
    ver = run(module, "--version")
    assert ver.returncode == 0
    assert ver.stdout.strip() == f"{prog} {__version__}"


def test_unknown_command_is_one_line_exit_2() -> None:
    res = run("agent.cli.agent_main", "frobnicate")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert "invalid choice: 'frobnicate'" in lines[-1]


def test_camera_probe_on_a_replay_source(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(5):
        cv2.imwrite(str(frames / f"{i:03d}.jpg"), np.zeros((48, 64, 3), np.uint8))
    cfg = tmp_path / "agent.toml"
    # loop: on a loaded machine the replay skips late frames, as a live camera drops them.
    cfg.write_text(
        f'[device]\nid = "lfr-t"\n[camera]\nsource = "replay"\ndevice = "{frames}"\n'
        "fps = 100\nloop = true\n"
    )
    res = run("agent.cli.agent_main", "camera", "probe", "--frames", "5", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "5 frames of 64x48" in res.stdout
    assert "camera closed" in res.stdout


def test_camera_probe_missing_source_is_exit_3(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[device]\nid = "lfr-t"\n[camera]\nsource = "replay"\ndevice = "{tmp_path}/none"\n'
    )
    res = run("agent.cli.agent_main", "camera", "probe", "--config", str(cfg))
    assert res.returncode == 3
    assert (
        res.stderr.strip() == f"lfr-agent: error: replay: {tmp_path}/none: no such file or folder"
    )


def test_bad_config_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[device]\nid = "lfr-t"\n[camera]\nfps = 0\n')
    res = run("agent.cli.agent_main", "camera", "probe", "--config", str(cfg))
    assert res.returncode == 2
    assert "camera.fps: must be 1–120, got 0" in res.stderr
