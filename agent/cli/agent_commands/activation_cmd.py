"""lfr-agent activation verify: the device's checks, offline and read-only."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from agent.cli.common import add_config_arg, load_args_config
from agent.errors import UsageError
from agent.trust.activation_verifier import ActivationRejected, ActivationVerifier


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("activation", help="verify signed activations, renewals and stops")
    asub = p.add_subparsers(dest="activation_command", metavar="ACTION", required=True)
    ver = asub.add_parser(
        "verify",
        help="run the device's checks on a token file (read-only); exit 0 only if valid",
    )
    ver.add_argument("--token", type=Path, required=True, help="signed document file")
    ver.add_argument(
        "--watchlist-hash",
        default=None,
        help="SHA-256 of the loaded watchlist; without it the watchlist step is skipped",
    )
    add_config_arg(ver)
    ver.set_defaults(handler=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    if args.watchlist_hash is not None and not re.fullmatch(r"[0-9a-f]{64}", args.watchlist_hash):
        raise UsageError("--watchlist-hash: must be 64 lower-case hex digits")
    try:
        data = args.token.read_bytes()
    except OSError as exc:
        raise UsageError(f"--token {args.token}: cannot read ({exc.strerror})") from exc
    cfg = load_args_config(args)
    verifier = ActivationVerifier.from_config(cfg, read_only=True)
    try:
        result = verifier.verify(
            data,
            loaded_watchlist_sha256=args.watchlist_hash,
            check_watchlist=args.watchlist_hash is not None,
            check_live=False,
            commit=False,
        )
    except ActivationRejected as exc:
        print(f"✗ {exc.step}: {exc.detail}")
        print("INVALID")
        return 1
    for step in result.steps:
        print(f"✓ {step}")
    doc = result.document
    if doc.kind != "activation":
        print("- live: not checked offline (needs the device's live activation)")
    elif args.watchlist_hash is None:
        print("- watchlist: not checked (give --watchlist-hash)")
    print(
        f"VALID {doc.kind} for {doc.device_id}, deployment {doc.deployment_id},"
        f" sequence {doc.sequence}, signed by {result.signer.subject} ({result.signer.role})"
    )
    return 0
