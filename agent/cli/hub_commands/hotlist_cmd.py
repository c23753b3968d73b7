"""lfr-hub hotlist build — a plate CSV to a signed, hashed, encrypted deployment hotlist."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from agent.cli.common import require
from agent.cli.hub_commands.hub_audit_args import add_hub_audit_arg, record_hub_event
from agent.cli.hub_commands.watchlist_cmd import (
    DEFAULT_HUB_DIR,
    DEVICES_DIR,
    _devices,
    _duration,
    _recipients,
)
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.watchlists.hotlist_builder import COLUMNS, build_hotlist, read_hotlist_csv
from agent.matching.watchlist_bundle import DEPLOYMENT_ID_RE
from agent.trust.device_keys import EXCHANGE_PUB_FILE


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("hotlist", help="build a plates deployment hotlist for devices")
    hsub = p.add_subparsers(dest="hotlist_command", metavar="ACTION", required=True)
    b = hsub.add_parser(
        "build",
        help="check a plate CSV, hash, sign and encrypt it for the devices",
        description=(
            f"The CSV starts with the header {','.join(COLUMNS)}; expiry is an ISO 8601 "
            "date or time (UTC unless it says otherwise; empty: the hotlist's own expiry). "
            "Bad rows are listed with the reason and the rest are built (or nothing, with "
            "--strict). Writes OUT (sealed: keyed hashes of the plates, no plate in clear) "
            "and OUT.hub-map.json (plate, reason and category per entry reference; keep it "
            f"at the hub). Each device's X25519 public key is read from "
            f"HUB_DIR/{DEVICES_DIR}/ID/{EXCHANGE_PUB_FILE} unless given with --device-key."
        ),
    )
    b.add_argument("--csv", type=Path, required=True, help="plate,reason,category,expiry CSV")
    b.add_argument("--device", required=True, help="target device id(s), comma-separated")
    b.add_argument("--deployment", required=True, help="plates deployment id it is for")
    b.add_argument("--out", type=Path, required=True, help="sealed hotlist file to write")
    b.add_argument("--strict", action="store_true", help="fail if any row is rejected")
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
    add_hub_audit_arg(b)
    b.set_defaults(handler=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    devices = _devices(args.device)
    require(
        bool(DEPLOYMENT_ID_RE.fullmatch(args.deployment)),
        f"hotlist: deployment id {args.deployment[:70]!r} must match {DEPLOYMENT_ID_RE.pattern}",
    )
    require(not Path(args.out).is_dir(), f"hotlist: --out {args.out} is a folder")
    signing_key = HubKeyStore.open(args.hub_dir).watchlist_signing_key()
    recipients = _recipients(devices, args.hub_dir, args.device_key)
    rows, rejected = read_hotlist_csv(args.csv, time.time())
    for r in rejected:
        print(f"✗ line {r.line}: {r.problem}")
    result = build_hotlist(
        rows,
        rejected,
        deployment_id=args.deployment,
        devices=devices,
        recipients=recipients,
        signing_key=signing_key,
        expires_in_s=args.expires,
        out=args.out,
        strict=args.strict,
    )
    print(f"accepted {result.entries} plates; rejected {len(result.rejected)} rows")
    record_hub_event(
        args,
        "hotlist.built",
        deployment_id=args.deployment,
        devices=",".join(devices),
        plates=result.entries,
        rows_rejected=len(result.rejected),
        hotlist_sha256=result.bundle.watchlist_hash,
    )
    print(
        f"✓ wrote {result.out} ({result.bundle.size_bytes} bytes) for {', '.join(devices)}; "
        f"hotlist hash {result.bundle.watchlist_hash}"
    )
    print(f"  hub map {result.map_path} (plates and reasons: keep it at the hub)")
    return 0
