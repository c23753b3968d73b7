"""lfr-agent activation verify: the device's checks, offline and read-only."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from agent.cli.common import add_config_arg, load_args_config
from agent.errors import UsageError
from agent.matching.watchlist_store import BUNDLE_SUFFIX, INDEX_FILE
from agent.trust.activation_token import Activation
from agent.trust.activation_verifier import (
    ActivationRejected,
    ActivationVerifier,
    peek_deployment,
)
from agent.trust.signed_document import UntrustedJsonError, loads_untrusted

# Where WatchlistStore keeps its sealed files and index, under paths.state_dir.
WATCHLIST_DIR = "watchlists"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("activation", help="verify signed activations, renewals and stops")
    asub = p.add_subparsers(dest="activation_command", metavar="ACTION", required=True)
    ver = asub.add_parser(
        "verify",
        help="run the device's checks on a token file (read-only); exit 0 only if valid",
    )
    ver.add_argument("--token", type=Path, required=True, help="signed document file")
    which = ver.add_mutually_exclusive_group()
    which.add_argument(
        "--watchlist-hash",
        default=None,
        help="check against this watchlist SHA-256 instead of the one stored on this device",
    )
    which.add_argument(
        "--skip-watchlist",
        action="store_true",
        help="do not check the watchlist hash (e.g. on a laptop without the device's state)",
    )
    add_config_arg(ver)
    ver.set_defaults(handler=cmd_verify)


def stored_watchlist_hash(state_dir: Path, deployment_id: str) -> str | None:
    """The watchlist this device holds for a deployment, read from the store's index
    without locking, creating or wiping anything (``WatchlistStore.hash_for_deployment``
    gives the same answer but may tidy the folder). None when none is held; an index the
    agent could not read either counts as none (the agent wipes every bundle then)."""
    folder = state_dir / WATCHLIST_DIR
    index = folder / INDEX_FILE
    try:
        raw = loads_untrusted(index.read_bytes())
        stored = raw["stored"]
        entries = [(h, e["deployment_id"]) for h, e in stored.items()]
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(
            f"watchlist index {index}: cannot read ({exc.strerror}); run as the agent's user"
            " or give --skip-watchlist"
        ) from exc
    except (UntrustedJsonError, KeyError, TypeError, AttributeError):
        return None
    for h, dep in entries:
        if (
            dep == deployment_id
            and isinstance(h, str)
            and (folder / f"{h}{BUNDLE_SUFFIX}").is_file()
        ):
            return h
    return None


def cmd_verify(args: argparse.Namespace) -> int:
    if args.watchlist_hash is not None and not re.fullmatch(r"[0-9a-f]{64}", args.watchlist_hash):
        raise UsageError("--watchlist-hash: must be 64 lower-case hex digits")
    try:
        data = args.token.read_bytes()
    except OSError as exc:
        raise UsageError(f"--token {args.token}: cannot read ({exc.strerror})") from exc
    cfg = load_args_config(args)
    watchlist_hash: str | None = args.watchlist_hash
    deployment = peek_deployment(data)
    from_store = watchlist_hash is None and not args.skip_watchlist
    if from_store and deployment is not None:
        watchlist_hash = stored_watchlist_hash(cfg.paths.state_dir, deployment)
    verifier = ActivationVerifier.from_config(cfg, read_only=True)
    try:
        result = verifier.verify(
            data,
            loaded_watchlist_sha256=watchlist_hash,
            check_watchlist=not args.skip_watchlist,
            check_live=False,
            commit=False,
        )
    except ActivationRejected as exc:
        print(f"✗ {exc.step}: {exc.detail}")
        if exc.step == "watchlist" and from_store:
            print(
                f"  (compared with the watchlist this device holds for {deployment}:"
                f" {watchlist_hash or 'none'}; --skip-watchlist checks the rest offline)"
            )
        print("INVALID")
        return 1
    for step in result.steps:
        print(f"✓ {step}")
    doc = result.document
    if doc.kind == "renewal":
        print("- live: not checked offline (needs the device's live activation)")
    elif doc.kind == "stop":
        print("- live: a stop is honoured whether or not its deployment is live")
    elif args.skip_watchlist:
        print("- watchlist: not checked (--skip-watchlist)")
    print(
        f"VALID {doc.kind} for {doc.device_id}, deployment {doc.deployment_id},"
        f" sequence {doc.sequence}, signed by {result.signer.subject} ({result.signer.role})"
    )
    if isinstance(doc, Activation):
        print(f"  threshold {doc.threshold:g} ({doc.score} score)")
        cal = doc.calibration
        if doc.target_fpir is not None and cal is not None:
            print(
                f"  from target FPIR {doc.target_fpir:.3g}: {cal.false_alerts} of"
                f" {cal.cohort_size} cohort faces at or above it, FPIR {cal.fpir:.4f}"
                f" (95% CI {cal.fpir_ci95[0]:.4f}–{cal.fpir_ci95[1]:.4f})"
            )
    return 0
