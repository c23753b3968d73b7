"""Both programs: help reads well, version, usage errors are one line with exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent import __version__
from agent.cli.common import run_main


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


def _replay_config(tmp_path: Path, name: str = "agent.toml", level: str = "info") -> Path:
    frames = tmp_path / "frames"
    if not frames.is_dir():
        frames.mkdir()
        for i in range(3):
            cv2.imwrite(str(frames / f"{i:03d}.jpg"), np.zeros((48, 64, 3), np.uint8))
    cfg = tmp_path / name
    cfg.write_text(
        f'[device]\nid = "lfr-t"\n[camera]\nsource = "replay"\ndevice = "{frames}"\n'
        f'fps = 100\nloop = true\n[logging]\nlevel = "{level}"\n'
    )
    return cfg


def test_config_before_the_command(tmp_path: Path) -> None:
    cfg = _replay_config(tmp_path)
    res = run("agent.cli.agent_main", "--config", str(cfg), "camera", "probe", "--frames", "2")
    assert res.returncode == 0, res.stderr
    assert "2 frames of 64x48" in res.stdout


def test_config_after_the_command_wins(tmp_path: Path) -> None:
    good = _replay_config(tmp_path)
    missing = tmp_path / "missing.toml"
    res = run(
        "agent.cli.agent_main",
        *("--config", str(missing), "camera", "probe", "--frames", "2", "--config", str(good)),
    )
    assert res.returncode == 0, res.stderr


def test_top_level_config_beats_the_environment(tmp_path: Path) -> None:
    good = _replay_config(tmp_path)
    missing = tmp_path / "missing.toml"
    env = {**os.environ, "LFR_AGENT_CONFIG": str(good)}
    base = [sys.executable, "-m", "agent.cli.agent_main"]
    by_env = subprocess.run(
        [*base, "camera", "probe", "--frames", "2"], env=env, capture_output=True, text=True
    )
    assert by_env.returncode == 0, by_env.stderr
    by_flag = subprocess.run(
        [*base, "-c", str(missing), "camera", "probe"], env=env, capture_output=True, text=True
    )
    assert by_flag.returncode == 2
    assert by_flag.stderr.strip() == f"lfr-agent: error: config: {missing}: file not found"


def test_config_check_takes_the_config_in_effect(tmp_path: Path) -> None:
    cfg = _replay_config(tmp_path)
    res = run("agent.cli.agent_main", "--config", str(cfg), "config", "check")
    assert (res.returncode, res.stdout.strip()) == (0, f"{cfg}: OK")


def test_top_level_config_on_a_command_without_one_is_a_usage_error(tmp_path: Path) -> None:
    cfg = _replay_config(tmp_path)
    res = run("agent.cli.agent_main", "--config", str(cfg), "config", "example")
    assert res.returncode == 2
    assert (
        res.stderr.strip()
        == "lfr-agent: error: --config: 'lfr-agent config' reads no device config file"
    )
    assert res.stdout == ""


LEVEL_PROBE = (
    "import logging, sys\n"
    "from agent.cli.agent_main import main\n"
    "rc = main(sys.argv[1:])\n"
    "print(rc, logging.getLevelName(logging.getLogger().getEffectiveLevel()))\n"
)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [([], "ERROR"), (["--log-level", "debug"], "DEBUG")],
)
def test_log_level_follows_the_config_unless_given(
    tmp_path: Path, flags: list[str], expected: str
) -> None:
    cfg = _replay_config(tmp_path, level="error")
    res = subprocess.run(
        [sys.executable, "-c", LEVEL_PROBE, *flags, "config", "check", "--config", str(cfg)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == f"0 {expected}"


def test_os_error_is_one_line_exit_3(tmp_path: Path, operator_passphrase: str) -> None:
    # Making a folder under a regular file fails with ENOTDIR even for root.
    plain = tmp_path / "plain"
    plain.write_text("")
    res = run("agent.cli.hub_main", "keys", "init", "--dir", str(plain / "hub"))
    assert res.returncode == 3, res.stderr
    assert res.stderr.strip() == f"lfr-hub: error: {plain / 'hub'}: Not a directory"


def test_unreadable_config_path_is_exit_2(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    res = run("agent.cli.agent_main", "camera", "probe", "--config", str(plain / "agent.toml"))
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"lfr-agent: error: config: {plain / 'agent.toml'}: cannot read (Not a directory)"
    )


def test_programming_errors_are_not_hidden() -> None:
    def boom(args: argparse.Namespace) -> int:
        raise ValueError("a bug")

    def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        sub.add_parser("boom").set_defaults(handler=boom)

    module = types.ModuleType("boom_cmd")
    module.register = register  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="a bug"):
        run_main("lfr-test", "test", [module], ["boom"])


def _device_config(tmp_path: Path) -> Path:
    """A replay-camera device with its own state, keys and runtime folders."""
    cfg = _replay_config(tmp_path)
    text = cfg.read_text().replace(
        "[camera]",
        f'[paths]\nstate_dir = "{tmp_path}/state"\nkeys_dir = "{tmp_path}/keys"\n'
        f'runtime_dir = "{tmp_path}/run"\n[camera]',
    )
    cfg.write_text(text)
    return cfg


def test_camera_probe_refuses_while_a_deployment_is_live(tmp_path: Path) -> None:
    from agent.runtime.update_lock import DeploymentLock, lock_path

    cfg = _device_config(tmp_path)
    lock = DeploymentLock(lock_path(tmp_path / "run"))
    lock.prepare()
    with lock:
        lock.acquire("dep-7")
        res = run("agent.cli.agent_main", "camera", "probe", "--config", str(cfg))
    assert res.returncode == 3
    line = res.stderr.strip()
    assert line.startswith(
        "lfr-agent: error: camera probe: refused, the camera belongs to a live deployment "
        "(held by deployment dep-7"
    ), line
    assert "\n" not in line and "frames of" not in res.stdout
    # Once the deployment has ended the probe works again.
    res = run("agent.cli.agent_main", "camera", "probe", "--frames", "2", "--config", str(cfg))
    assert res.returncode == 0, res.stderr


def test_camera_probe_is_recorded_in_the_device_audit_log(tmp_path: Path) -> None:
    from agent.trust.audit_log import AUDIT_FILE, AuditLog, verify_audit_log
    from agent.trust.device_keys import generate_device_keys

    cfg = _device_config(tmp_path)
    keys = generate_device_keys(tmp_path / "keys")
    log_path = tmp_path / "state" / AUDIT_FILE
    AuditLog.open(log_path, keys.signing, checkpoint_every=50).close()  # the device's log
    res = run("agent.cli.agent_main", "camera", "probe", "--frames", "2", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "audit" not in res.stderr
    data = log_path.read_bytes()
    verify_audit_log(data, keys.signing.public_key())  # chain and checkpoints still verify
    probes = [
        e["fields"] for e in map(json.loads, data.splitlines()) if e["event"] == "camera.probe"
    ]
    source = f"replay:{tmp_path / 'frames'}"
    assert probes == [
        {"action": "opened", "source": source},
        {"action": "closed", "source": source, "frames": 2},
    ]


def test_camera_probe_without_an_audit_log_says_so(tmp_path: Path) -> None:
    cfg = _device_config(tmp_path)
    res = run("agent.cli.agent_main", "camera", "probe", "--frames", "2", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == (
        "lfr-agent: note: probe not recorded in the audit log "
        f"(no audit log at {tmp_path / 'state' / 'audit.jsonl'})"
    )
    assert not (tmp_path / "state").exists()  # nothing created on a device without one
