"""lfr-hub activate|renew|stop: write operator-signed control documents to files.

An activation's threshold is either given (``--threshold``, a cosine score unless
``--score snorm``) or derived from a target false-alert rate (``--target-fpir``) by
calibrating against the watchlist file with a non-mated cohort
(``agent.hub.calibration``); the target and the calibration then travel in the
activation. A plates activation (``--hotlist``) names the hotlist's SHA-256 and takes a
read-confidence ``--threshold``; face scores and calibration do not apply to it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from agent.cli.hub_commands.calibrate_cmd import (
    add_calibration_args,
    format_rate,
    open_for_calibration,
)
from agent.cli.hub_commands.keys_cmd import add_hub_dir_arg
from agent.errors import UsageError
from agent.hub.calibration.threshold_calibration import calibrate, parse_fpir
from agent.hub.devices.device_withdrawal import require_not_withdrawn
from agent.hub.keys.activation_issuer import ActivationIssuer, parse_duration
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.watchlists.watchlist_reader import read_hub_watchlist
from agent.trust.activation_token import ANALYTIC_FACES, ANALYTIC_PLATES, Calibration
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
    lists = act.add_mutually_exclusive_group(required=True)
    lists.add_argument(
        "--watchlist",
        help="faces: the sealed watchlist file (built by this hub), or its SHA-256",
    )
    lists.add_argument(
        "--hotlist",
        help="SHA-256 of the deployment hotlist: tasks the camera with number plates, "
        "not faces (a separate deployment with its own id)",
    )
    how = act.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--threshold",
        type=float,
        help="faces: match threshold in force (a cosine score unless --score snorm); "
        "plates: lowest voted read confidence that hits",
    )
    how.add_argument(
        "--target-fpir",
        metavar="RATE",
        help="target false alerts per face compared, e.g. 1/6000: the threshold is calibrated "
        "against the --watchlist file with the --cohort",
    )
    act.add_argument("--officer", required=True, help="supervising officer reference")
    act.add_argument(
        "--start", type=int, default=None, help="not-before, Unix seconds UTC (default now)"
    )
    add_calibration_args(act)
    act.add_argument(
        "--record",
        action="store_true",
        help="CCTV recording for this deployment: sealed segments kept on the camera up "
        "to 31 days (off unless given; shown in the audit log and the report)",
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
    return ActivationIssuer(HubKeyStore.open(args.hub_dir), args.operator, "")


def _write(out: Path, data: bytes, what: str) -> int:
    try:
        write_atomic(out, data, 0o644)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write ({exc.strerror})") from exc
    print(f"{what} written to {out}")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    require_not_withdrawn(args.hub_dir, args.device)
    issuer = _issuer(args)
    watchlist_path = Path(args.watchlist or "")
    is_hash = re.fullmatch(r"[0-9a-f]{64}", args.watchlist or "") is not None
    target: float | None = None
    calibration: Calibration | None = None
    if args.hotlist is not None:
        if args.target_fpir is not None:
            raise UsageError(
                "--target-fpir: a plates threshold is a read confidence; use --threshold"
            )
        if args.score not in ("auto", "cosine"):
            raise UsageError("--score: face scores do not apply to a plates activation (--hotlist)")
        watchlist_hash, threshold, score = args.hotlist, args.threshold, "cosine"
    elif args.target_fpir is not None:
        target = parse_fpir(args.target_fpir)
        if is_hash:
            raise UsageError(
                "--target-fpir: give --watchlist as the sealed watchlist file, not its hash"
            )
        watchlist, score, note, cohort = open_for_calibration(args, watchlist_path)
        try:
            choice = calibrate(
                (watchlist.embeddings, watchlist.refs),
                cohort.embeddings,
                score=score,
                target_fpir=target,
                floor=args.floor,
                top_k=args.top_k,
            )
        finally:
            watchlist.wipe()
        c = choice.calibration
        print(
            f"target FPIR {format_rate(target)}: {score} threshold {choice.threshold:.4f}"
            + (f" ({note})" if note else "")
            + f"; {c.false_alerts} of {c.cohort_size} cohort faces alert, FPIR {c.fpir:.4f}"
            f" (95% CI {c.fpir_ci95[0]:.4f}–{c.fpir_ci95[1]:.4f})"
        )
        watchlist_hash, threshold, calibration = watchlist.watchlist_hash, choice.threshold, c
    else:
        if is_hash:
            watchlist_hash = args.watchlist
        elif watchlist_path.is_file():
            opened = read_hub_watchlist(watchlist_path, HubKeyStore.open(args.hub_dir))
            watchlist_hash = opened.watchlist_hash
            opened.wipe()
        else:
            raise UsageError(
                f"--watchlist: {args.watchlist[:80]!r} is neither a watchlist file nor a 64 hex digit SHA-256"
            )
        threshold = args.threshold
        score = "cosine" if args.score == "auto" else args.score
    data = issuer.activation(
        device_id=args.device,
        deployment_id=args.deployment,
        duration_s=parse_duration(args.duration, "--duration"),
        lease_s=parse_duration(args.lease, "--lease"),
        watchlist_sha256=watchlist_hash,
        threshold=threshold,
        officer=args.officer,
        not_before=args.start,
        score=score,
        target_fpir=target,
        calibration=calibration,
        recording=args.record,
        analytic=ANALYTIC_PLATES if args.hotlist else ANALYTIC_FACES,
    )
    return _write(args.out, data, "activation with recording" if args.record else "activation")


def cmd_renew(args: argparse.Namespace) -> int:
    data = _issuer(args).renewal(
        args.device, args.deployment, parse_duration(args.lease, "--lease")
    )
    return _write(args.out, data, "renewal")


def cmd_stop(args: argparse.Namespace) -> int:
    data = _issuer(args).stop(args.device, args.deployment, args.reason)
    return _write(args.out, data, "stop")
