"""The pi-gen stage script, run as pi-gen runs it, with pi-gen's ``on_chroot`` standing in.

pi-gen itself (debootstrap of Raspberry Pi OS, an hour of arm64 chroot work) does
not run here; ``on_chroot`` is exported as a shell function that records the
script it was given, the way pi-gen exports its own. Everything the stage does
outside the chroot (copying the source tree, pinning the hub root) runs for real.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGE = REPO / "deploy" / "pi-gen" / "stage-lfr" / "00-install-agent"
PIN = Path("etc/lfr-agent/hub-root.fingerprint")
FIRST_BOOT_PIN = "/etc/lfr-agent/hub-root.fingerprint"


def run_stage(rootfs: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # What install.sh would have made inside the image.
    (rootfs / "etc/lfr-agent").mkdir(parents=True, exist_ok=True)
    full = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    full.update(
        {
            "ROOTFS_DIR": str(rootfs),
            "LFR_SRC": str(REPO),
            "BASH_FUNC_on_chroot%%": '() { cat > "${ROOTFS_DIR}/on_chroot.sh"; }',
            **env,
        }
    )
    return subprocess.run(
        [str(STAGE / "00-run.sh")],
        cwd=STAGE,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_pin_path_is_the_one_first_boot_reads() -> None:
    from agent.provisioning.first_boot import IMAGE_PIN_FILE

    assert str(IMAGE_PIN_FILE) == FIRST_BOOT_PIN == f"/{PIN}"


def test_without_a_fingerprint_the_image_carries_no_pin(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / PIN.parent).mkdir(parents=True)
    (rootfs / PIN).write_text("0123456789abcdef\n")  # left by an earlier build
    res = run_stage(rootfs)
    assert res.returncode == 0, res.stderr
    assert not (rootfs / PIN).exists()
    assert "/opt/lfr-agent-src/deploy/install.sh" in (rootfs / "on_chroot.sh").read_text()
    assert (rootfs / "opt/lfr-agent-src/deploy/install.sh").is_file()


def test_fingerprint_is_pinned_in_the_form_the_device_compares(tmp_path: Path) -> None:
    from agent.provisioning.enrolment_bundle import normalise_fingerprint

    rootfs = tmp_path / "rootfs"
    given = "9102 8BB5:767f 0b85  A1B2"
    res = run_stage(rootfs, LFR_HUB_ROOT_FINGERPRINT=given)
    assert res.returncode == 0, res.stderr
    pin = rootfs / PIN
    assert pin.read_text() == "91028bb5767f0b85a1b2\n"
    assert normalise_fingerprint(pin.read_text()) == "91028bb5767f0b85a1b2"
    st = pin.lstat()
    assert stat.S_IMODE(st.st_mode) == 0o644
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (0, 0)
    assert f"hub root fingerprint pinned in {FIRST_BOOT_PIN}" in res.stdout


@pytest.mark.parametrize("bad", ["9102 8bb5", "zz028bb5767f0b85", "a" * 65])
def test_bad_fingerprint_stops_the_stage_before_anything_is_built(tmp_path: Path, bad: str) -> None:
    rootfs = tmp_path / "rootfs"
    res = run_stage(rootfs, LFR_HUB_ROOT_FINGERPRINT=bad)
    assert res.returncode != 0
    assert res.stderr.strip() == (
        "stage-lfr: LFR_HUB_ROOT_FINGERPRINT: expected 16 to 64 hex digits "
        "(spaces and colons allowed)"
    )
    assert not (rootfs / "opt").exists() and not (rootfs / "on_chroot.sh").exists()
    assert not (rootfs / PIN).exists()


def test_stage_script_is_executable() -> None:
    # pi-gen runs only executable *-run.sh files; a lost mode bit skips the stage silently.
    assert (STAGE / "00-run.sh").stat().st_mode & stat.S_IXUSR
