"""lfr-hub activate|renew|stop: write operator-signed control documents to files."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.cli.hub_commands.keys_cmd import add_hub_dir_arg
from agent.errors import UsageError
from agent.hub.activation_issuer import ActivationIssuer, parse_duration
from agent.hub.operator_keys import HubKeyStore
from agent.trust.key_files import write_atomic


def _common(p: argparse.ArgumentParser) -> None:
    add_hub_dir_arg(p)
    p.add_argument("--operator", required=True, help="operator whose key signs the document")
    p.add_argument("--device", required=True, help="device id")
    p.add_argument("--deployment", required=True, help="deployment id")
    p.add_argument("--out", type=Path, required=True, help="file to write the signed document to")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    act = sub.add_parser("activate", help="sign an activation for one device and deployment")
    _common(act)
    act.add_argument("--duration", required=True, help="window length, e.g. 4h (device cap 12h)")
    act.add_argument("--lease", required=True, help="lease; capture stops unless renewed, e.g. 10m")
    act.add_argument("--watchlist", required=True, help="SHA-256 of the deployment watchlist")
    act.add_argument("--threshold", type=float, required=True, help="match threshold in force")
    act.add_argument("--officer", required=True, help="supervising officer reference")
    act.add_argument(
        "--start", type=int, default=None, help="not-before, Unix seconds UTC (default now)"
    )
    act.set_defaults(handler=cmd_activate)
    ren = sub.add_parser("renew", help="sign a renewal extending the live activation's lease")
    _common(ren)
    ren.add_argument("--lease", required=True, help="new lease from receipt, e.g. 10m")
    ren.set_defaults(handler=cmd_renew)
    stop = sub.add_parser("stop", help="sign a stop ending the live activation at once")
    _common(stop)
    stop.add_argument("--reason", default="", help="short reason, recorded in the audit log")
    stop.set_defaults(handler=cmd_stop)


def _issuer(args: argparse.Namespace) -> ActivationIssuer:
    return ActivationIssuer(HubKeyStore.open(args.hub_dir), args.operator)


def _write(out: Path, data: bytes, what: str) -> int:
    try:
        write_atomic(out, data, 0o644)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write ({exc.strerror})") from exc
    print(f"{what} written to {out}")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    data = _issuer(args).activation(
        device_id=args.device,
        deployment_id=args.deployment,
        duration_s=parse_duration(args.duration, "--duration"),
        lease_s=parse_duration(args.lease, "--lease"),
        watchlist_sha256=args.watchlist,
        threshold=args.threshold,
        officer=args.officer,
        not_before=args.start,
    )
    return _write(args.out, data, "activation")


def cmd_renew(args: argparse.Namespace) -> int:
    data = _issuer(args).renewal(
        args.device, args.deployment, parse_duration(args.lease, "--lease")
    )
    return _write(args.out, data, "renewal")


def cmd_stop(args: argparse.Namespace) -> int:
    data = _issuer(args).stop(args.device, args.deployment, args.reason)
    return _write(args.out, data, "stop")
