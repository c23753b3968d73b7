"""The shipped unit, sysusers and tmpfiles files, checked with systemd's own tools.

The exposure score is a property of the unit file (not a timing), so it is
asserted directly. systemd is not PID 1 here; ``systemd-analyze`` works
offline, and sysusers/tmpfiles are applied to a throw-away root directory.
A missing tool or missing root skips a test on a developer's machine, but fails
it when ``CI`` is set: CI installs the tools and runs as root, so a skip there
would hide a check that never ran.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support.ci_required import unavailable

from agent.config import PathsSection
from agent.runtime.update_lock import lock_path

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "lfr-agent.service"
SYSUSERS = REPO / "systemd" / "lfr-agent.sysusers.conf"
TMPFILES = REPO / "systemd" / "lfr-agent.tmpfiles.conf"
MAX_EXPOSURE = 1.2


def require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed")


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        unavailable(f"{why} needs root")


@pytest.fixture
def analyze() -> None:
    require_tools("systemd-analyze")


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


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


@pytest.mark.usefixtures("analyze")
def test_exposure_is_at_most_1_2() -> None:
    exposure = exposure_of(UNIT)
    print(f"systemd-analyze security exposure: {exposure}")
    assert exposure <= MAX_EXPOSURE
    # The same check as CI would phrase it: --threshold is exposure × 10.
    res = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=12", str(UNIT)],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert res.returncode == 0


@pytest.mark.usefixtures("analyze")
def test_exposure_check_can_fail(tmp_path: Path) -> None:
    weakened = tmp_path / "lfr-agent.service"
    weakened.write_text(
        re.sub(
            r"(?m)^(PrivateTmp|ProtectSystem|ProtectHome|NoNewPrivileges)=.*$", "", UNIT.read_text()
        )
    )
    assert exposure_of(weakened) > MAX_EXPOSURE


def _verify(unit_text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    # verify needs ExecStart to exist: point it at an executable that does.
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={shutil.which('true')}", unit_text)
    (folder / "lfr-agent.service").write_text(text)
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "./lfr-agent.service"],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
        timeout=120,
    )


@pytest.mark.usefixtures("analyze")
def test_verify_reports_nothing(tmp_path: Path) -> None:
    res = _verify(UNIT.read_text(), tmp_path)
    assert res.returncode == 0
    assert res.stderr.strip() == ""


@pytest.mark.usefixtures("analyze")
def test_verify_check_can_fail(tmp_path: Path) -> None:
    typo = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict")
    res = _verify(typo, tmp_path)
    assert "ProtectSytem" in res.stderr  # verify exits 0 on typos; stderr is what tells


def test_unit_has_the_required_settings() -> None:
    s = unit_settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["ExecStart"] == ["/opt/lfr-agent/bin/lfr-agent run --config /etc/lfr-agent/agent.toml"]
    assert s["Restart"] == ["on-failure"] and s["WatchdogSec"]
    assert s["User"] == ["lfr-agent"] and s["Group"] == ["lfr-agent"]
    assert s["SupplementaryGroups"] == ["video"]
    assert s["StateDirectory"] == ["lfr-agent"] and s["StateDirectoryMode"] == ["0700"]
    assert s["ConfigurationDirectory"] == ["lfr-agent"]
    assert s["RuntimeDirectory"] == ["lfr-agent"]
    assert s["DevicePolicy"] == ["closed"]
    assert {"char-video4linux rw", "char-media rw"} <= set(s["DeviceAllow"])
    assert s["NoNewPrivileges"] == ["yes"] and s["PrivateTmp"] == ["yes"]
    assert s["ProtectSystem"] == ["strict"] and s["ProtectHome"] == ["yes"]
    assert s["MemoryDenyWriteExecute"] == ["yes"]
    # The malloc tuning the endurance soak needs (see the unit's comment).
    assert "MALLOC_ARENA_MAX=2 MALLOC_TRIM_THRESHOLD_=131072" in s["Environment"]
    assert s["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    families = s["RestrictAddressFamilies"][0].split()
    assert set(families) == {"AF_UNIX", "AF_INET", "AF_INET6"}  # no netlink, no packet


def test_unit_paths_match_the_config_defaults() -> None:
    paths = PathsSection()
    assert paths.state_dir == Path("/var/lib/lfr-agent")  # StateDirectory=lfr-agent
    assert paths.runtime_dir == Path("/run/lfr-agent")  # RuntimeDirectory=lfr-agent
    assert str(lock_path(paths.runtime_dir)) in TMPFILES.read_text()
    tmpfiles = TMPFILES.read_text()
    for path in (paths.state_dir, paths.keys_dir, paths.models_dir, paths.runtime_dir):
        assert re.search(rf"(?m)^d\s+{re.escape(str(path))}\s", tmpfiles), path


def test_sysusers_and_tmpfiles_give_the_intended_owners_and_modes(tmp_path: Path) -> None:
    require_root("chown in a temp root")
    require_tools("systemd-sysusers", "systemd-tmpfiles")
    root = tmp_path / "root"
    for sub in ("etc", "usr/lib/sysusers.d", "usr/lib/tmpfiles.d", "etc/lfr-agent/keys"):
        (root / sub).mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    shutil.copy(SYSUSERS, root / "usr/lib/sysusers.d/lfr-agent.conf")
    shutil.copy(TMPFILES, root / "usr/lib/tmpfiles.d/lfr-agent.conf")
    key = root / "etc/lfr-agent/keys/device-sign-key.pem"
    key.write_text("provisioned by hand with a loose mode\n")
    key.chmod(0o644)
    for tool in ("systemd-sysusers", "systemd-tmpfiles"):
        args = [tool, f"--root={root}"] + (["--create"] if tool.endswith("tmpfiles") else [])
        res = subprocess.run(
            [*args, "lfr-agent.conf"], capture_output=True, text=True, check=False, timeout=60
        )
        assert res.returncode == 0, res.stderr
    entry = next(
        line.split(":")
        for line in (root / "etc/passwd").read_text().splitlines()
        if line.startswith("lfr-agent:")
    )
    uid, gid, shell = int(entry[2]), int(entry[3]), entry[6]
    assert 0 < uid < 1000 and shell == "/usr/sbin/nologin"

    def owner_mode(rel: str) -> tuple[int, int, int]:
        st = (root / rel).stat()
        return st.st_uid, st.st_gid, st.st_mode & 0o7777

    assert owner_mode("var/lib/lfr-agent") == (uid, gid, 0o700)
    assert owner_mode("var/lib/lfr-agent/models") == (uid, gid, 0o700)
    assert owner_mode("etc/lfr-agent") == (0, gid, 0o750)
    assert owner_mode("etc/lfr-agent/keys") == (uid, gid, 0o700)
    assert owner_mode("etc/lfr-agent/keys/device-sign-key.pem") == (uid, gid, 0o600)
    assert owner_mode("run/lfr-agent") == (uid, gid, 0o750)
    assert owner_mode("run/lfr-agent/deployment.lock") == (uid, gid, 0o640)


_MDWE_PROBE = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("unsupported"); sys.exit(0)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    print("not enforced"); sys.exit(0)
except OSError:
    pass
import numpy as np, cv2, onnxruntime as ort
from pathlib import Path
from agent.vision.model_store import resolve_models
models = resolve_models(Path(sys.argv[1]))
det = ort.InferenceSession(str(models["detector"].path), providers=["CPUExecutionProvider"])
name = det.get_inputs()[0].name
det.run(None, {name: np.zeros((1, 3, 320, 320), np.float32)})
emb = ort.InferenceSession(str(models["embedder"].path), providers=["CPUExecutionProvider"])
out = emb.run(None, {emb.get_inputs()[0].name: np.zeros((1, 3, 112, 112), np.float32)})
cv2.resize(np.zeros((480, 640, 3), np.uint8), (320, 240))
print("ok", out[0].shape)
"""


@pytest.mark.slow
def test_models_run_with_memory_deny_write_execute(models_dir: Path) -> None:
    """MemoryDenyWriteExecute=yes must not break inference.

    The kernel's PR_SET_MDWE (Linux ≥ 6.3) refuses the same thing systemd's
    filter does: memory that is writable and executable, or becomes executable.
    """
    res = subprocess.run(
        [sys.executable, "-c", _MDWE_PROBE, str(models_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if res.stdout.strip() in ("unsupported", "not enforced"):
        pytest.skip(f"PR_SET_MDWE {res.stdout.strip()} on this kernel")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "ok (1, 128)"


def test_video_group_still_opens_devices_inside_private_users() -> None:
    """PrivateUsers=yes shows the video group as nogroup; the kernel must still honour it.

    A root:video 0660 file stands in for /dev/video0 (device nodes cannot be made here).
    """
    require_root("switching users")
    require_tools("setpriv", "unshare")
    video_gid = 44
    folder = Path(tempfile.mkdtemp(prefix="lfr-privusers-"))  # pytest's tmp is root-only
    folder.chmod(0o755)
    node = folder / "video0"
    node.write_text("frame\n")
    os.chown(node, 0, video_gid)
    node.chmod(0o660)

    def cat_as_service(groups: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["setpriv", "--reuid", "4242", "--regid", "4242", *groups, "--",
             "unshare", "--user", "--map-current-user", "cat", str(node)],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip

    try:
        with_video = cat_as_service(["--groups", str(video_gid)])
        without = cat_as_service(["--clear-groups"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if "unshare" in with_video.stderr and "Operation not permitted" in with_video.stderr:
        pytest.skip("unprivileged user namespaces are disabled here")
    assert with_video.returncode == 0 and with_video.stdout == "frame\n", with_video.stderr
    assert without.returncode != 0 and "Permission denied" in without.stderr
