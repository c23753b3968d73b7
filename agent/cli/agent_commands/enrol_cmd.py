"""lfr-agent enrol request|complete|status|first-boot — enrolment with keys born here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cryptography import x509

from agent.cli.common import add_config_arg, config_path
from agent.config import AgentConfig, PathsSection, load_config
from agent.errors import CheckFailed, LfrError, UsageError
from agent.provisioning.enrolment_bundle import (
    BundleCandidate,
    BundleRefused,
    format_fingerprint,
)
from agent.provisioning.enrolment_install import (
    device_signing_key_id,
    install_bundle,
    installed_root_fingerprint,
)
from agent.provisioning.enrolment_request import make_request
from agent.provisioning.first_boot import BOOT_DIR, IMAGE_PIN_FILE, run_first_boot
from agent.trust.system_clock import ClockSync, SystemClock

MAX_BUNDLE_BYTES = 1024 * 1024


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("enrol", help="enrol this device with the hub (keys are made here)")
    esub = p.add_subparsers(dest="enrol_command", metavar="ACTION", required=True)

    req = esub.add_parser(
        "request",
        help="make the device keys (if absent) and an enrolment request for the hub",
        description="Existing keys are never replaced. The request holds public keys, a "
        "certificate request and hardware facts only; take it to the hub operator.",
    )
    req.add_argument("--id", required=True, help="device id, e.g. lfr-cam-07")
    req.add_argument("--out", type=Path, required=True, help="request file to write")
    _common(req)
    req.set_defaults(handler=cmd_request)

    com = esub.add_parser(
        "complete",
        help="install the hub's approval bundle and check it",
        description="The bundle carries the hub root key. Confirm its fingerprint with the "
        "value the hub operator gives you (--root-fingerprint), or compare the printed "
        "value and answer yes (--yes skips the question).",
    )
    com.add_argument(
        "bundle", type=Path, metavar="BUNDLE", help="bundle from 'lfr-hub device approve'"
    )
    com.add_argument(
        "--root-fingerprint",
        default=None,
        metavar="HEX",
        help="hub root fingerprint (16+ hex digits)",
    )
    com.add_argument("--yes", action="store_true", help="accept the printed root fingerprint")
    com.add_argument(
        "--force", action="store_true", help="update config keys that differ from the bundle"
    )
    _common(com)
    com.set_defaults(handler=cmd_complete)

    st = esub.add_parser("status", help="is this device enrolled? (exit 1 if not)")
    add_config_arg(st)
    st.set_defaults(handler=cmd_status)

    fb = esub.add_parser(
        "first-boot",
        help="act on enrolment files on the boot partition (run by lfr-agent-firstboot.service)",
    )
    fb.add_argument("--boot-dir", type=Path, default=BOOT_DIR, help="boot partition (%(default)s)")
    fb.add_argument(
        "--pin-file",
        type=Path,
        default=IMAGE_PIN_FILE,
        help="hub root fingerprint baked into the image (%(default)s)",
    )
    _common(fb)
    fb.set_defaults(handler=cmd_first_boot)


def _common(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    p.add_argument(
        "--keys-dir",
        type=Path,
        default=None,
        help="key folder (default: the config's paths.keys_dir, else /etc/lfr-agent/keys)",
    )


def _keys_dir(args: argparse.Namespace) -> tuple[Path, Path]:
    """(config path, keys dir): an existing config must be valid; an absent one is fine."""
    path = config_path(args)
    if args.keys_dir is not None:
        return path, Path(args.keys_dir)
    if path.exists():
        return path, load_config(path).paths.keys_dir
    return path, PathsSection().keys_dir


def _clock() -> tuple[float, bool]:
    clock = SystemClock()
    return clock.wall(), clock.sync_state() is ClockSync.SYNCHRONISED


def cmd_request(args: argparse.Namespace) -> int:
    _, keys_dir = _keys_dir(args)
    made = make_request(args.id, keys_dir, args.out)
    print(
        f"✓ device keys   {'created' if made.keys_created else 'kept (already present)'} in {keys_dir}"
    )
    print(f"✓ TLS key       {'created' if made.tls_key_created else 'kept (already present)'}")
    f = made.facts
    print(f"  board         {f.model}, serial {f.serial}, {f.arch}, kernel {f.kernel}")
    print(f"  cameras       {', '.join(f.cameras) or 'no /dev/video* node'}")
    print(f"✓ request       {made.path} for {made.device_id}")
    print(f"  fingerprint   {format_fingerprint(made.fingerprint[:32])}")
    print("next: give the request to the hub operator; read the fingerprint out to compare")
    return 0


def _confirm(candidate: BundleCandidate, args: argparse.Namespace, keys_dir: Path) -> str:
    fp = candidate.root_fingerprint
    print(f"  hub root      {format_fingerprint(fp)}")
    installed = installed_root_fingerprint(keys_dir)
    if installed is not None:
        if installed != fp:
            raise BundleRefused(
                "bundle: from a different hub root than the one this device trusts "
                f"({format_fingerprint(installed[:16])}…); not installed"
            )
        return installed
    if args.root_fingerprint:
        return str(args.root_fingerprint)
    if args.yes:
        print("  (accepted with --yes: make sure it matched the hub's fingerprint)")
        return fp
    if not sys.stdin.isatty():
        raise UsageError(
            "enrol complete: first enrolment needs --root-fingerprint HEX (from the hub "
            "operator) or --yes after comparing the fingerprint printed above"
        )
    answer = input("Does this match the fingerprint the hub operator gave you? [yes/no] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise BundleRefused("bundle: root fingerprint not confirmed; nothing installed")
    return fp


def cmd_complete(args: argparse.Namespace) -> int:
    cfg_path, keys_dir = _keys_dir(args)
    try:
        with open(args.bundle, "rb") as f:
            data = f.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"enrol complete: cannot read {args.bundle} ({exc.strerror})") from exc
    if len(data) > MAX_BUNDLE_BYTES:
        raise UsageError(f"enrol complete: {args.bundle} is larger than a bundle can be")
    candidate = BundleCandidate(data)
    confirmed = _confirm(candidate, args, keys_dir)
    now, synced = _clock()
    bundle = candidate.verify(
        confirmed,
        device_signing_key_id=device_signing_key_id(keys_dir),
        now=now,
        clock_synchronised=synced,
    )
    print(f"✓ bundle        for {bundle.device_id}, approved by {bundle.signer.subject}")
    if not synced:
        print("  (clock not synchronised: expiry dates were not checked)")
    result = install_bundle(
        bundle, keys_dir, cfg_path, force=args.force, now=now, clock_synchronised=synced
    )
    print(f"✓ installed     {len(result.written)} files in {keys_dir}")
    print(f"✓ config        {result.config_path}")
    for change in result.config_changes:
        print(f"    {change}")
    for problem in result.problems:
        print(f"✗ check         {problem}")
    if result.problems:
        raise CheckFailed("enrol complete: installed, but the check above failed")
    print(f"✓ enrolled      broker mqtts://{bundle.broker_host}:{bundle.broker_port}")
    print("next: 'lfr-agent doctor', then 'systemctl restart lfr-agent'")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from agent.diagnostics.doctor_checks import check_enrolment_state

    cfg: AgentConfig = load_config(config_path(args))
    print(f"  device        {cfg.device.id}")
    print(f"  broker        mqtts://{cfg.mqtt.host}:{cfg.mqtt.port}")
    try:
        cert = x509.load_pem_x509_certificate(cfg.mqtt.cert_file.read_bytes())
        print(f"  certificate   valid to {cert.not_valid_after_utc:%Y-%m-%d}")
    except (OSError, ValueError):
        pass  # the check below names the problem
    try:
        root = installed_root_fingerprint(cfg.paths.keys_dir)
    except LfrError:
        root = None
    if root:
        print(f"  hub root      {format_fingerprint(root)}")
    result = check_enrolment_state(cfg)
    print(result.line())
    return 0 if result.ok else 1


def cmd_first_boot(args: argparse.Namespace) -> int:
    cfg_path, keys_dir = _keys_dir(args)
    result = run_first_boot(cfg_path, keys_dir, args.boot_dir, args.pin_file)
    for line in result.actions or ["nothing to do"]:
        print(line)
    return 0 if result.ok else 1
