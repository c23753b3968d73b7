"""lfr-hub watchlist build — reference photos to a signed, encrypted deployment watchlist."""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.cli.common import require
from agent.cli.hub_commands.hub_audit_args import add_hub_audit_arg, record_hub_event
from agent.hub.devices.device_withdrawal import require_not_withdrawn
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.watchlists.watchlist_builder import build_watchlist, check_photos
from agent.hub.watchlists.watchlist_enrolment import (
    EnrolmentChecker,
    PhotoVerdict,
    list_reference_photos,
)
from agent.matching.watchlist_bundle import DEPLOYMENT_ID_RE, DEVICE_ID_RE
from agent.trust.device_keys import EXCHANGE_PUB_FILE
from agent.trust.key_files import load_public_key
from agent.untrusted_text import raw_stream
from agent.vision.model_store import resolve_models

DEFAULT_HUB_DIR = Path("/etc/lfr-hub/keys")
DEFAULT_MODELS_DIR = Path("/var/lib/lfr-hub/models")
DEVICES_DIR = "devices"
MAX_EXPIRY_S = 7 * 86400


def _duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number and d, h or m, e.g. 24h")
    seconds = float(m.group(1)) * {"d": 86400, "h": 3600, "m": 60}[m.group(2)]
    if not 0 < seconds <= MAX_EXPIRY_S:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0 and at most 7d")
    return seconds


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("watchlist", help="build a deployment watchlist for devices")
    wsub = p.add_subparsers(dest="watchlist_command", metavar="ACTION", required=True)
    b = wsub.add_parser(
        "build",
        help="check reference photos, embed, sign and encrypt them for the devices",
        description=(
            "Each photo must show exactly one clear, frontal, large enough face; rejected "
            "photos are listed with the reason and the rest are built (or nothing, with "
            "--strict). Writes OUT (sealed; copy it to the devices or send it over MQTT) "
            "and OUT.hub-map.json (names and photos per entry reference; keep it at the hub). "
            f"Each device's X25519 public key is read from HUB_DIR/{DEVICES_DIR}/ID/"
            f"{EXCHANGE_PUB_FILE} unless given with --device-key."
        ),
    )
    b.add_argument(
        "--images",
        type=Path,
        action="append",
        required=True,
        metavar="DIR_OR_CSV",
        help="folder of subject folders, or CSV subject,category,image (repeatable)",
    )
    b.add_argument("--device", required=True, help="target device id(s), comma-separated")
    b.add_argument("--deployment", required=True, help="deployment id the watchlist is for")
    b.add_argument("--out", type=Path, required=True, help="sealed watchlist file to write")
    b.add_argument("--strict", action="store_true", help="fail if any photo is rejected")
    b.add_argument(
        "--expires", type=_duration, default=_duration("24h"), help="validity (default 24h, max 7d)"
    )
    b.add_argument(
        "--hub-dir", type=Path, default=DEFAULT_HUB_DIR, help=f"hub key folder ({DEFAULT_HUB_DIR})"
    )
    b.add_argument(
        "--device-key",
        action="append",
        default=[],
        metavar="ID=PEM",
        help="X25519 public key file of a device (repeatable)",
    )
    b.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        help=f"pinned models, the same as on the devices ({DEFAULT_MODELS_DIR})",
    )
    b.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    add_hub_audit_arg(b)
    b.set_defaults(handler=cmd_build)


def _devices(text: str) -> list[str]:
    devices = [d.strip() for d in text.split(",") if d.strip()]
    require(bool(devices), "watchlist: --device names no device")
    for d in devices:
        require(bool(DEVICE_ID_RE.fullmatch(d)), f"watchlist: device id {d[:70]!r} is not valid")
    require(len(set(devices)) == len(devices), "watchlist: a device is named twice")
    return devices


def _recipients(devices: list[str], hub_dir: Path, given: list[str]) -> dict[str, X25519PublicKey]:
    explicit: dict[str, Path] = {}
    for item in given:
        dev, sep, path = item.partition("=")
        require(bool(sep and dev and path), f"watchlist: --device-key {item!r}: use ID=PEM")
        explicit[dev] = Path(path)
    for dev in explicit:
        require(dev in devices, f"watchlist: --device-key for {dev}, which is not in --device")
    for dev in devices:
        require_not_withdrawn(hub_dir, dev)
    paths = {d: explicit.get(d, hub_dir / DEVICES_DIR / d / EXCHANGE_PUB_FILE) for d in devices}
    return {d: load_public_key(p, X25519PublicKey) for d, p in paths.items()}  # type: ignore[type-abstract]


class _ProgressBar:
    """A one-line progress bar on stderr, drawn only for a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        fill = width * done // max(total, 1)
        raw_stream(sys.stderr).write(
            f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} photos"
        )
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def rejection_summary(verdicts: list[PhotoVerdict]) -> list[str]:
    """Lines listing each rejected photo with its reasons, then counts per kind of reason."""
    rejected = [v for v in verdicts if not v.accepted]
    lines = [f"✗ {v.photo.path} ({v.photo.subject}): {'; '.join(v.reasons)}" for v in rejected]
    kinds: Counter[str] = Counter()
    for v in rejected:
        for r in v.reasons:
            kinds[_reason_kind(r)] += 1
    if kinds:
        lines.append(
            "rejections by reason: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common())
        )
    return lines


def _reason_kind(reason: str) -> str:
    if "faces found" in reason:
        return "several faces"
    return reason.split(":")[0]


def cmd_build(args: argparse.Namespace) -> int:
    devices = _devices(args.device)
    require(
        bool(DEPLOYMENT_ID_RE.fullmatch(args.deployment)),
        f"watchlist: deployment id {args.deployment[:70]!r} must match {DEPLOYMENT_ID_RE.pattern}",
    )
    require(args.threads >= 0, "watchlist: --threads must be 0 or more")
    require(not Path(args.out).is_dir(), f"watchlist: --out {args.out} is a folder")
    hub_keys = HubKeyStore.open(args.hub_dir)
    signing_key = hub_keys.watchlist_signing_key()
    recipients = _recipients(devices, args.hub_dir, args.device_key)
    photos = list_reference_photos(args.images)
    models = resolve_models(args.models_dir)
    checker = EnrolmentChecker(models, threads=args.threads)
    verdicts = check_photos(photos, checker, _ProgressBar())
    for line in rejection_summary(verdicts):
        print(line)
    result = build_watchlist(
        verdicts,
        model_id=checker.model.model_id,
        model_sha256=checker.model.sha256,
        deployment_id=args.deployment,
        devices=devices,
        recipients=recipients,
        signing_key=signing_key,
        expires_in_s=args.expires,
        out=args.out,
        strict=args.strict,
        # Sealed to the hub alert key too, so 'lfr-hub calibrate' can open it.
        hub_key=hub_keys.alert_private_key().public_key(),
    )
    missing = sorted(
        {v.photo.subject for v in verdicts} - {v.photo.subject for v in result.accepted}
    )
    print(
        f"accepted {len(result.accepted)} of {len(verdicts)} photos "
        f"({result.subjects} subjects); rejected {len(result.rejected)}"
    )
    if missing:
        print(f"subjects with no accepted photo (not in the watchlist): {', '.join(missing)}")
    record_hub_event(
        args,
        "watchlist.built",
        deployment_id=args.deployment,
        devices=",".join(devices),
        photos_accepted=len(result.accepted),
        photos_rejected=len(result.rejected),
        subjects=result.subjects,
        watchlist_sha256=result.bundle.watchlist_hash,
    )
    print(
        f"✓ wrote {result.out} ({result.bundle.size_bytes} bytes) for {', '.join(devices)}; "
        f"watchlist hash {result.bundle.watchlist_hash}"
    )
    print(f"  hub map {result.map_path} (names and photos: keep it at the hub)")
    return 0
