"""lfr-agent doctor — is this device ready for a deployment? One line per check."""

from __future__ import annotations

import argparse
import json

from agent.cli.common import add_config_arg, load_args_config
from agent.diagnostics.doctor_checks import CheckResult, DoctorOptions, run_doctor


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check camera, models, keys, enrolment, clock, broker, disk, temperature, service",
        description="Prints ✓ (ok), ✗ (fail, with a fix), ⚠ (warning or skipped) or · (for "
        "information) per check. Exit 1 if any check failed. Never opens the camera while "
        "a deployment is live.",
    )
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument(
        "--broker-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds to wait for the broker's answer (default %(default)s)",
    )
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    cfg = load_args_config(args)
    options = DoctorOptions(broker_timeout_s=max(0.5, min(args.broker_timeout, 60.0)))

    def show(r: CheckResult) -> None:
        if not args.json:
            print(r.line(), flush=True)

    results = run_doctor(cfg, options, on_result=show)
    failed = [r for r in results if not r.ok]
    if args.json:
        print(
            json.dumps(
                {
                    "device": cfg.device.id,
                    "ok": not failed,
                    "checks": [r.to_dict() for r in results],
                },
                ensure_ascii=False,
            )
        )
    else:
        print(f"{len(failed)} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0
