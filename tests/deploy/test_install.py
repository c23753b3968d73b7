"""deploy/install.sh into a temporary root prefix (DESTDIR): files, owners, modes, idempotency.

The installer runs for real (venv, pip, systemd-sysusers --root, systemd-tmpfiles
--root); apt and systemctl are skipped under DESTDIR by design.  It runs from a
snapshot of the source tree so that edits elsewhere in the tree during the run
cannot change what is installed between the two runs being compared.
Tests that need root skip without it on a developer's machine but fail when
``CI`` is set: CI runs as root, so a skip there would hide an owner check.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.ci_required import in_ci, unavailable

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT_PARTS = ("agent", "configs", "deploy", "systemd", "pyproject.toml", "README.md")
IS_ROOT = os.geteuid() == 0
SERVICE_USER = "lfr-agent"

Snapshot = dict[str, tuple[int, int, int, int, str]]


def require_root(why: str) -> None:
    if not IS_ROOT:
        unavailable(f"{why} needs root")


def run_installer(
    src: Path, destdir: Path | None, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DESTDIR"}
    if destdir is not None:
        env["DESTDIR"] = str(destdir)
    proc = subprocess.run(
        [str(src / "deploy" / "install.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"install.sh {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def snapshot(root: Path) -> Snapshot:
    """Every path under root with type+mode, owner, group, mtime and content hash."""
    found: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = ""
            mtime = 0 if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
            found[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, mtime, content)
    return found


def passwd_entry(root: Path, db: str, name: str) -> list[str]:
    for line in (root / "etc" / db).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    raise AssertionError(f"{name} not in {root}/etc/{db}")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in SNAPSHOT_PARTS:
        origin = REPO / part
        if origin.is_dir():
            shutil.copytree(origin, src / part, ignore=ignore)
        elif origin.is_file():
            shutil.copy2(origin, src / part)
    return src


HOST_DATABASES = ("/etc/passwd", "/etc/group", "/etc/shadow")


def host_databases() -> list[bytes]:
    return [Path(p).read_bytes() if os.access(p, os.R_OK) else b"" for p in HOST_DATABASES]


class Installed:
    def __init__(
        self, root: Path, first: Snapshot, second: Snapshot, second_log: str, host_same: bool
    ) -> None:
        self.root = root
        self.first = first
        self.second = second
        self.second_log = second_log
        self.host_databases_unchanged = host_same


@pytest.fixture(scope="module")
def installed(source_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("destdir")
    host_before = host_databases()
    run_installer(source_tree, root, "--no-apt", "--no-models")
    first = snapshot(root)
    again = run_installer(source_tree, root, "--no-apt", "--no-models")
    return Installed(
        root, first, snapshot(root), again.stdout + again.stderr, host_databases() == host_before
    )


# ---- argument handling (no install) -------------------------------------------


def test_help_describes_flags(source_tree: Path, tmp_path: Path) -> None:
    proc = run_installer(source_tree, tmp_path / "root", "--help")
    for flag in ("--no-apt", "--no-models", "--wheel FILE", "DESTDIR"):
        assert flag in proc.stdout
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--frobnicate",), "unknown argument '--frobnicate'"),
        (("--wheel",), "--wheel needs a FILE"),
        (("--wheel", "/nonexistent/agent.whl"), "wheel '/nonexistent/agent.whl' not found"),
    ],
)
def test_bad_arguments_give_one_line_error(
    source_tree: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    proc = run_installer(source_tree, tmp_path / "root", *args, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("install.sh: error: ")
    assert message in lines[0]
    assert not (tmp_path / "root" / "opt").exists()


def test_wheel_must_be_a_wheel(source_tree: Path, tmp_path: Path) -> None:
    not_a_wheel = tmp_path / "agent.tar.gz"
    not_a_wheel.write_bytes(b"\x1f\x8b")
    proc = run_installer(source_tree, tmp_path / "root", "--wheel", str(not_a_wheel), check=False)
    assert proc.returncode != 0
    assert "is not a wheel (.whl)" in proc.stderr


def test_without_destdir_non_root_is_refused() -> None:
    require_root("switching to an unprivileged user")
    # A minimal world-readable tree (pytest's tmp folders are private to root),
    # run as nobody: the installer must stop at once.
    top = Path(tempfile.mkdtemp(prefix="lfr-install-"))
    try:
        tree = top / "tree"
        (tree / "deploy").mkdir(parents=True)
        (tree / "agent").mkdir()
        (tree / "pyproject.toml").write_text("")
        shutil.copy2(REPO / "deploy" / "install.sh", tree / "deploy" / "install.sh")
        for path in (top, tree, tree / "deploy"):
            path.chmod(0o755)
        proc = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                str(tree / "deploy" / "install.sh"),
                "--no-apt",
            ],
            env={k: v for k, v in os.environ.items() if k != "DESTDIR"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(top)
    assert proc.returncode != 0
    assert proc.stderr.strip() == (
        f"install.sh: error: run as root (sudo {tree}/deploy/install.sh), "
        "or set DESTDIR to install under a prefix"
    )


# ---- a real install into a prefix ---------------------------------------------


@pytest.mark.slow
def test_installs_expected_files(installed: Installed) -> None:
    root = installed.root
    for rel in (
        "opt/lfr-agent/bin/python",
        "opt/lfr-agent/bin/lfr-agent",
        "opt/lfr-agent/bin/lfr-hub",
        "opt/lfr-agent/bin/lfr-update-guard",
        "etc/lfr-agent/agent.toml",
        "etc/lfr-agent/keys",
        "var/lib/lfr-agent",
        "var/lib/lfr-agent/models",
    ):
        assert (root / rel).exists(), rel
    for unit in sorted((REPO / "systemd").glob("*.service")):
        assert (root / "usr/lib/systemd/system" / unit.name).read_bytes() == unit.read_bytes()
    assert (root / "usr/lib/systemd/system/lfr-agent-firstboot.service").is_file()
    assert (root / "usr/lib/sysusers.d/lfr-agent.conf").is_file()
    assert (root / "usr/lib/tmpfiles.d/lfr-agent.conf").is_file()
    guard = root / "opt/lfr-agent/bin/lfr-update-guard"
    assert guard.stat().st_mode & 0o111
    example = REPO / "configs" / "agent.example.toml"
    assert (root / "etc/lfr-agent/agent.toml").read_bytes() == example.read_bytes()


@pytest.mark.slow
def test_installed_agent_runs_from_the_venv(installed: Installed) -> None:
    proc = subprocess.run(
        [str(installed.root / "opt/lfr-agent/bin/lfr-agent"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "models" in proc.stdout
    cfg = (installed.root / "opt/lfr-agent/pyvenv.cfg").read_text()
    # This machine has no python3-picamera2 from apt, so the venv stays isolated
    # and numpy is not held back.
    assert "include-system-site-packages = false" in cfg
    assert not (installed.root / "opt/lfr-agent/pip-constraints.txt").exists()


@pytest.mark.slow
def test_service_user_is_created_in_the_prefix(installed: Installed) -> None:
    user = passwd_entry(installed.root, "passwd", SERVICE_USER)
    group = passwd_entry(installed.root, "group", SERVICE_USER)
    assert int(user[2]) < 1000, "a system user"
    assert user[3] == group[2]
    assert user[5] == "/var/lib/lfr-agent"
    assert user[6] == "/usr/sbin/nologin"
    assert installed.host_databases_unchanged, "the host's own user database was modified"


@pytest.mark.slow
def test_modes(installed: Installed) -> None:
    root = installed.root
    assert mode(root / "etc/lfr-agent") == 0o750
    assert mode(root / "etc/lfr-agent/agent.toml") == 0o644
    assert mode(root / "etc/lfr-agent/keys") == 0o700
    assert mode(root / "var/lib/lfr-agent") == 0o700
    assert mode(root / "var/lib/lfr-agent/models") == 0o700
    assert mode(root / "opt/lfr-agent") == 0o755
    for unit in (root / "usr/lib/systemd/system").iterdir():
        assert mode(unit) == 0o644, unit


@pytest.mark.slow
def test_owners(installed: Installed) -> None:
    require_root("setting owners")
    root = installed.root
    uid = int(passwd_entry(root, "passwd", SERVICE_USER)[2])
    gid = int(passwd_entry(root, "group", SERVICE_USER)[2])

    def owner(rel: str) -> tuple[int, int]:
        st = (root / rel).lstat()
        return st.st_uid, st.st_gid

    assert owner("etc/lfr-agent") == (0, gid)
    assert owner("etc/lfr-agent/agent.toml") == (0, 0)
    assert owner("etc/lfr-agent/keys") == (uid, gid)
    assert owner("var/lib/lfr-agent") == (uid, gid)
    assert owner("opt/lfr-agent") == (0, 0)
    assert owner("opt/lfr-agent/bin/python")[0] == 0


@pytest.mark.slow
def test_second_run_changes_nothing(installed: Installed) -> None:
    added = installed.second.keys() - installed.first.keys()
    removed = installed.first.keys() - installed.second.keys()
    changed = [
        p
        for p in installed.first.keys() & installed.second.keys()
        if installed.first[p] != installed.second[p]
    ]
    assert not added and not removed and not changed, (sorted(added), sorted(removed), changed)
    assert "up to date" in installed.second_log
    assert "keeping existing /etc/lfr-agent/agent.toml" in installed.second_log


@pytest.mark.slow
def test_technicians_config_is_never_overwritten(installed: Installed, source_tree: Path) -> None:
    config = installed.root / "etc/lfr-agent/agent.toml"
    original = config.read_bytes()
    edited = original + b"\n# set by the technician on site\n"
    config.write_bytes(edited)
    try:
        run_installer(source_tree, installed.root, "--no-apt", "--no-models")
        assert config.read_bytes() == edited
    finally:
        config.write_bytes(original)


@pytest.mark.slow
def test_key_files_are_tightened_on_rerun(installed: Installed, source_tree: Path) -> None:
    key = installed.root / "etc/lfr-agent/keys/device-signing-key.pem"
    key.write_text("placeholder, not a key\n")
    key.chmod(0o644)
    try:
        run_installer(source_tree, installed.root, "--no-apt", "--no-models")
        assert mode(key) == 0o600
        if IS_ROOT:
            uid = int(passwd_entry(installed.root, "passwd", SERVICE_USER)[2])
            assert key.lstat().st_uid == uid
    finally:
        key.unlink()


@pytest.mark.slow
def test_models_are_installed_verified_and_readable(
    installed: Installed, source_tree: Path
) -> None:
    root = installed.root
    run_installer(source_tree, root, "--no-apt")
    models = root / "var/lib/lfr-agent/models"
    onnx = sorted(models.glob("*.onnx"))
    # The two face models and the two number-plate models (read out of the pinned wheel).
    assert len(onnx) == 4 and (models / "manifest.json").is_file()
    assert {"ppocrv4_det.onnx", "ppocrv4_rec.onnx"} <= {f.name for f in onnx}
    for f in [*onnx, models / "manifest.json"]:
        assert mode(f) == 0o644, f
    if IS_ROOT:
        # Readable by the service user, writable by root alone.
        for f in [*onnx, models / "manifest.json"]:
            assert (f.lstat().st_uid, f.lstat().st_gid) == (0, 0), f
    elif in_ci():
        pytest.fail("model file owners are only checked as root: required when CI is set")
    verify = subprocess.run(
        [str(root / "opt/lfr-agent/bin/lfr-agent"), "models", "verify", "--dir", str(models)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, verify.stderr
    before = snapshot(root)
    again = run_installer(source_tree, root, "--no-apt")
    assert "models verified" in again.stdout
    assert snapshot(root) == before


@pytest.mark.slow
def test_installs_from_a_wheel(source_tree: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    # Built from a copy: pip leaves build/ and egg-info next to the sources.
    build_src = tmp_path / "build-src"
    shutil.copytree(source_tree, build_src)
    build = subprocess.run(
        [
            str(REPO / ".venv/bin/pip"),
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(wheels),
            str(build_src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("lfr_edge_agent-*.whl")
    root = tmp_path / "root"
    run_installer(source_tree, root, "--no-apt", "--no-models", "--wheel", str(wheel))
    stamp = (root / "opt/lfr-agent/.lfr-installed-from").read_text()
    assert stamp.startswith(f"wheel {wheel.name} ")
    assert (root / "opt/lfr-agent/bin/lfr-agent").is_file()
    before = snapshot(root)
    again = run_installer(source_tree, root, "--no-apt", "--no-models", "--wheel", str(wheel))
    assert "up to date" in again.stdout
    assert snapshot(root) == before


PICAMERA2_FROM_APT = """\
Package: python3-picamera2
Status: install ok installed
Priority: optional
Section: python
Installed-Size: 1
Maintainer: Raspberry Pi <applications@raspberrypi.com>
Architecture: all
Version: 0.3.17-1
Description: the camera stack's Python bindings, as Raspberry Pi OS installs them
"""


@pytest.mark.slow
def test_picamera2_from_apt_keeps_numpy_below_2(source_tree: Path, tmp_path: Path) -> None:
    """Raspberry Pi OS: apt's picamera2 and simplejpeg are built on numpy 1.x.

    The target's dpkg database says python3-picamera2 is installed, as on a Pi:
    the venv must see the system site packages and pip must resolve numpy < 2
    (it picks numpy 2.x here otherwise), with the agent's vision stack still
    importing on it.
    """
    root = tmp_path / "root"
    status = root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text(PICAMERA2_FROM_APT)
    first = run_installer(source_tree, root, "--no-apt", "--no-models")
    venv = root / "opt/lfr-agent"
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    assert (venv / "pip-constraints.txt").read_text() == "numpy<2\n"
    assert "pip constraint for apt's picamera2: numpy<2" in first.stdout
    probe = subprocess.run(
        [
            str(venv / "bin/python"),
            "-c",
            "import numpy, cv2, onnxruntime, agent.vision.face_pipeline; print(numpy.__version__)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().split(".")[0] == "1", probe.stdout
    before = snapshot(root)
    again = run_installer(source_tree, root, "--no-apt", "--no-models")
    assert "up to date" in again.stdout
    assert snapshot(root) == before
