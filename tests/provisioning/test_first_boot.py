"""The first-boot path: files on a (temporary) boot partition are acted on once, and the
oneshot unit passes systemd's own checks."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from enrolment_world import Site, make_site

from agent.config import load_config
from agent.provisioning.first_boot import run_first_boot

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "lfr-agent-firstboot.service"
DEV = "cam-11"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = make_site(tmp_path, DEV)
    (tmp_path / "boot").mkdir()
    return s


def _first_boot(site: Site, pin: Path | None = None) -> bool:
    boot = site.root / "boot"
    return run_first_boot(site.config, site.keys_dir, boot, pin or site.root / "no-pin").ok


def test_request_then_bundle_each_picked_up_once(site: Site) -> None:
    boot = site.root / "boot"
    (boot / "lfr-device-id").write_text(f"{DEV}\n")
    assert _first_boot(site)
    assert (boot / "lfr-enrol.request").exists() and (boot / "lfr-device-id.done").exists()
    keys_before = (site.keys_dir / "device-ed25519-key.pem").read_bytes()
    # A second boot with nothing new does nothing.
    assert _first_boot(site)
    assert (site.keys_dir / "device-ed25519-key.pem").read_bytes() == keys_before

    bundle = site.approve(boot / "lfr-enrol.request")
    shutil.copy(bundle, boot / "lfr-enrol.bundle")
    (boot / "lfr-enrol.root-fingerprint").write_text(site.root_fingerprint + "\n")
    assert _first_boot(site)
    assert not (boot / "lfr-enrol.bundle").exists() and (boot / "lfr-enrol.bundle.done").exists()
    assert load_config(site.config).device.id == DEV
    log = (boot / "lfr-enrol.log").read_text()
    assert f"enrolled as {DEV}" in log and "confirmed by the boot partition" in log


def test_bundle_without_any_pin_is_not_installed(site: Site) -> None:
    boot = site.root / "boot"
    bundle = site.approve(site.request())
    shutil.copy(bundle, boot / "lfr-enrol.bundle")
    assert not _first_boot(site)
    assert (boot / "lfr-enrol.bundle.failed").exists()
    assert "no hub root fingerprint" in (boot / "lfr-enrol.log").read_text()
    assert not (site.keys_dir / "device-cert.pem").exists()


def test_image_pin_wins_over_the_boot_partition(site: Site) -> None:
    boot = site.root / "boot"
    bundle = site.approve(site.request())
    shutil.copy(bundle, boot / "lfr-enrol.bundle")
    (boot / "lfr-enrol.root-fingerprint").write_text(site.root_fingerprint)
    image_pin = site.root / "hub-root.fingerprint"
    image_pin.write_text("ab" * 32)  # the image was built for another hub
    assert not _first_boot(site, image_pin)
    assert "not the confirmed" in (boot / "lfr-enrol.log").read_text()
    assert (boot / "lfr-enrol.bundle.failed").exists()


def _unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line.strip() and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def test_unit_is_a_oneshot_conditioned_on_the_boot_files() -> None:
    s = _unit_settings()
    assert s["Type"] == ["oneshot"]
    assert set(s["ConditionPathExists"]) == {
        "|/boot/firmware/lfr-device-id",
        "|/boot/firmware/lfr-enrol.bundle",
    }
    assert s["Before"] == ["lfr-agent.service"]
    assert s["ExecStart"][0].split()[1:4] == ["enrol", "first-boot", "--boot-dir"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("broken", [False, True])
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, broken: bool) -> None:
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={shutil.which('true')}", UNIT.read_text())
    if broken:  # proves the check can fail: verify reports typos on stderr only
        text = text.replace("ProtectSystem=strict", "ProtectSytem=strict")
    (tmp_path / "lfr-agent-firstboot.service").write_text(text)
    res = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "./lfr-agent-firstboot.service"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    if broken:
        assert "ProtectSytem" in res.stderr
    else:
        assert res.returncode == 0, res.stderr
        assert res.stderr.strip() == "", res.stderr
