"""The deployment lock, honoured by deploy/update-guard.sh and plain ``flock -n``."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli.agent_main import main as agent_main
from agent.runtime.update_lock import (
    DeploymentLock,
    DeploymentLockBusy,
    UpdateLockError,
    lock_path,
    read_status,
)

REPO = Path(__file__).resolve().parents[2]
GUARD = REPO / "deploy" / "update-guard.sh"
needs_flock = pytest.mark.skipif(shutil.which("flock") is None, reason="util-linux flock missing")


def test_acquire_names_the_deployment_and_release_frees_it(tmp_path: Path) -> None:
    path = lock_path(tmp_path / "run")
    with DeploymentLock(path) as lock:
        lock.acquire("dep-42")
        status = read_status(path)
        assert status.held and status.deployment_id == "dep-42"
        assert status.pid is not None and status.since is not None
        assert "deployment dep-42" in status.describe()
        assert path.stat().st_mode & 0o027 == 0  # never world-readable, never group-writable
    assert not read_status(path).held
    assert path.read_bytes() == b""  # content cleared on release


def test_prepare_creates_a_free_lock_file(tmp_path: Path) -> None:
    path = lock_path(tmp_path / "run")
    DeploymentLock(path).prepare()
    assert path.exists() and path.read_bytes() == b""
    assert not read_status(path).held


def test_second_holder_is_refused(tmp_path: Path) -> None:
    path = lock_path(tmp_path)
    first = DeploymentLock(path)
    first.acquire("dep-1")
    try:
        with pytest.raises(DeploymentLockBusy, match="update in progress"):
            DeploymentLock(path).acquire("dep-2", wait_s=0)
    finally:
        first.release()
    second = DeploymentLock(path)
    second.acquire("dep-2", wait_s=0)
    second.release()


def test_reacquire_same_deployment_is_idempotent_other_is_an_error(tmp_path: Path) -> None:
    lock = DeploymentLock(lock_path(tmp_path))
    lock.acquire("dep-1")
    lock.acquire("dep-1")
    with pytest.raises(UpdateLockError, match="already held for deployment dep-1"):
        lock.acquire("dep-2")
    lock.release()
    lock.release()  # releasing twice is harmless
    assert not lock.held


def test_missing_file_means_free_and_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    assert not read_status(tmp_path / "nothing" / "deployment.lock").held
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UpdateLockError) as err:
        DeploymentLock(blocker / "deployment.lock").acquire("dep-1")
    assert str(blocker) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UpdateLockError, match="not a regular file"):
        read_status(tmp_path)


def test_garbage_content_still_reports_held(tmp_path: Path) -> None:
    import fcntl
    import os

    path = lock_path(tmp_path)
    path.write_bytes(b"\xff not json")
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        status = read_status(path)
        assert status.held and status.deployment_id is None
        assert "another process" in status.describe()
    finally:
        os.close(fd)


def _guard(lock: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(GUARD), "--lock", str(lock), "--", *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@needs_flock
def test_update_guard_refuses_while_a_deployment_is_live(tmp_path: Path) -> None:
    path = lock_path(tmp_path)
    marker = tmp_path / "updated"
    with DeploymentLock(path) as lock:
        lock.acquire("dep-9")
        res = _guard(path, "touch", str(marker))
        assert res.returncode == 75
        assert "dep-9" in res.stderr and "refused" in res.stderr
        assert not marker.exists()
        plain = subprocess.run(["flock", "-n", "-E", "75", str(path), "true"], check=False)
        assert plain.returncode == 75  # the documented one-line recipe
    res = _guard(path, "touch", str(marker))
    assert res.returncode == 0 and marker.exists()
    assert _guard(path, "sh", "-c", "exit 3").returncode == 3  # the command's own exit code


@needs_flock
def test_update_guard_runs_when_no_lock_file_exists(tmp_path: Path) -> None:
    res = _guard(tmp_path / "absent.lock", "true")
    assert res.returncode == 0 and "no deployment lock" in res.stderr


def test_update_guard_usage_errors() -> None:
    res = subprocess.run(["sh", str(GUARD)], capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "no command" in res.stderr
    res = subprocess.run(
        ["sh", str(GUARD), "--wait", "soon", "--", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 2 and "--wait" in res.stderr


@pytest.mark.system
@needs_flock
def test_agent_cannot_start_a_deployment_during_an_update(tmp_path: Path) -> None:
    path = lock_path(tmp_path)
    path.write_bytes(b"")
    started, release = tmp_path / "started", tmp_path / "release"
    script = f"touch {started}; while [ ! -e {release} ]; do sleep 0.05; done"
    update = subprocess.Popen(["sh", str(GUARD), "--lock", str(path), "--", "sh", "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert started.exists(), "update never started"
        with pytest.raises(DeploymentLockBusy):
            DeploymentLock(path).acquire("dep-1", wait_s=0)
        release.touch()
        assert update.wait(timeout=30) == 0
    finally:
        if update.poll() is None:
            update.kill()
            update.wait()
    with DeploymentLock(path) as lock:
        lock.acquire("dep-1", wait_s=0)
        assert read_status(path).deployment_id == "dep-1"


@pytest.mark.system
def test_lock_of_a_killed_agent_is_not_stale(tmp_path: Path) -> None:
    path = lock_path(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from agent.runtime.update_lock import DeploymentLock\n"
            f"DeploymentLock(Path({str(path)!r})).acquire('dep-crash')\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert read_status(path).deployment_id == "dep-crash"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    status = read_status(path)
    assert not status.held  # the kernel dropped the flock with the process
    assert b"dep-crash" in path.read_bytes()  # stale content is ignored, not trusted


def test_cli_status_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = lock_path(tmp_path)
    assert agent_main(["update-lock", "status", "--lock", str(path)]) == 0
    assert "free" in capsys.readouterr().out
    with DeploymentLock(path) as lock:
        lock.acquire("dep-5")
        assert agent_main(["update-lock", "status", "--lock", str(path), "--json"]) == 1
        payload = json.loads(capsys.readouterr().out)
        assert payload["held"] is True and payload["deployment_id"] == "dep-5"
        assert payload["lock"] == str(path)


def test_cli_status_reads_runtime_dir_from_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[device]\nid = "dev-1"\n[paths]\nruntime_dir = "{run_dir}"\n')
    with DeploymentLock(lock_path(run_dir)) as lock:
        lock.acquire("dep-6")
        assert agent_main(["update-lock", "status", "--config", str(cfg)]) == 1
    assert "held by deployment dep-6" in capsys.readouterr().out


def test_cli_lock_path_that_is_a_folder_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert agent_main(["update-lock", "status", "--lock", str(tmp_path)]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a regular file" in err


def test_cli_bad_config_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.toml"
    assert agent_main(["update-lock", "status", "--config", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "file not found" in err
