"""Unattended enrolment through the boot partition (run by ``lfr-agent-firstboot.service``).

The technician never needs a shell on the device. Files on the boot partition
(``/boot/firmware`` on Raspberry Pi OS bookworm), each acted on once:

    lfr-device-id                 one line: the device id  →  the device makes its keys and
                                  writes lfr-enrol.request; renamed lfr-device-id.done
    lfr-enrol.bundle              the hub's approval        →  installed and checked;
                                  renamed lfr-enrol.bundle.done (or .failed)
    lfr-enrol.root-fingerprint    the hub root fingerprint, read when the image has no pin
    lfr-enrol.log                 what happened, for the technician reading the card

**How the hub root is confirmed without a person.** Preferred: the image carries the
fingerprint in ``/etc/lfr-agent/hub-root.fingerprint`` (written at image build), so a
bundle from any other hub is refused. Otherwise the fingerprint is taken from
``lfr-enrol.root-fingerprint`` beside the bundle. That file travels on the same card
as the bundle, so it is trust on first use: whoever can write the card before first
boot could enrol the device to another hub. That person could as well replace the
whole system on the card, so it adds no new exposure, but keep cards in custody until
the device shows ``online`` at the hub. With neither pin the bundle is not installed.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from agent.errors import LfrError
from agent.provisioning.enrolment_bundle import BundleCandidate
from agent.provisioning.enrolment_install import (
    device_signing_key_id,
    install_bundle,
    installed_root_fingerprint,
)
from agent.provisioning.enrolment_request import EnrolmentError, check_device_id, make_request
from agent.trust.system_clock import ClockSync, SystemClock

BOOT_DIR = Path("/boot/firmware")
IMAGE_PIN_FILE = Path("/etc/lfr-agent/hub-root.fingerprint")
ID_FILE = "lfr-device-id"
REQUEST_FILE = "lfr-enrol.request"
BUNDLE_FILE = "lfr-enrol.bundle"
PIN_FILE = "lfr-enrol.root-fingerprint"
LOG_FILE = "lfr-enrol.log"


@dataclass(frozen=True)
class FirstBootResult:
    actions: list[str]
    ok: bool


def _log(boot_dir: Path, line: str) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        with open(boot_dir / LOG_FILE, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {line}\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        pass  # the journal still has it


def _pin(boot_dir: Path, image_pin: Path, keys_dir: Path) -> tuple[str, str]:
    installed = installed_root_fingerprint(keys_dir)
    if installed:
        return installed, "the hub root already installed"
    for path, what in ((image_pin, "the image"), (boot_dir / PIN_FILE, "the boot partition")):
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise EnrolmentError(f"first boot: cannot read {path} ({exc})") from exc
        if text:
            return text, f"{what} ({path})"
    raise EnrolmentError(
        f"first boot: no hub root fingerprint (put it in {PIN_FILE} beside the bundle)"
    )


def run_first_boot(
    config_path: Path,
    keys_dir: Path,
    boot_dir: Path = BOOT_DIR,
    image_pin: Path = IMAGE_PIN_FILE,
) -> FirstBootResult:
    """Do whatever the boot partition asks for; every outcome is logged there."""
    actions: list[str] = []
    ok = True
    id_file = boot_dir / ID_FILE
    if id_file.exists() and not (boot_dir / REQUEST_FILE).exists():
        try:
            device_id = check_device_id(id_file.read_text(encoding="utf-8").strip())
            made = make_request(device_id, keys_dir, boot_dir / REQUEST_FILE)
            id_file.rename(boot_dir / f"{ID_FILE}.done")
            line = (
                f"request for {device_id} written to {REQUEST_FILE}; fingerprint {made.fingerprint}"
            )
        except (LfrError, OSError, UnicodeDecodeError) as exc:
            ok = False
            line = f"request FAILED: {exc}"
        actions.append(line)
        _log(boot_dir, line)
    bundle_file = boot_dir / BUNDLE_FILE
    if bundle_file.exists():
        suffix = ".failed"
        try:
            fingerprint, source = _pin(boot_dir, image_pin, keys_dir)
            candidate = BundleCandidate(bundle_file.read_bytes())
            clock = SystemClock()
            synced = clock.sync_state() is ClockSync.SYNCHRONISED
            bundle = candidate.verify(
                fingerprint,
                device_signing_key_id=device_signing_key_id(keys_dir),
                now=clock.wall(),
                clock_synchronised=synced,
            )
            result = install_bundle(
                bundle,
                keys_dir,
                config_path,
                force=False,
                now=clock.wall(),
                clock_synchronised=synced,
            )
            if result.problems:
                raise EnrolmentError("installed but check failed: " + "; ".join(result.problems))
            suffix = ".done"
            line = (
                f"enrolled as {bundle.device_id}; hub root {bundle.root_fingerprint} "
                f"confirmed by {source}"
            )
        except (LfrError, OSError) as exc:
            ok = False
            line = f"bundle NOT installed: {exc}"
        try:
            bundle_file.rename(boot_dir / f"{BUNDLE_FILE}{suffix}")
        except OSError as exc:
            ok = False
            line += f" (and could not rename it: {exc.strerror})"
        actions.append(line)
        _log(boot_dir, line)
    return FirstBootResult(actions, ok)
