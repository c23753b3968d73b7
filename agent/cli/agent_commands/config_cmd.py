"""lfr-agent config check|example"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.config import load_config, render_example
from agent.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="check a config file or print the documented example")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    chk = csub.add_parser(
        "check", help="validate FILE; exit 0 when valid, else print every problem"
    )
    chk.add_argument("file", type=Path)
    chk.set_defaults(handler=cmd_check)
    ex = csub.add_parser("example", help="print the example config with every key and its default")
    ex.set_defaults(handler=cmd_example)


def cmd_check(args: argparse.Namespace) -> int:
    try:
        load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        return 2
    print(f"{args.file}: OK")
    return 0


def cmd_example(args: argparse.Namespace) -> int:
    sys.stdout.write(render_example())
    return 0
