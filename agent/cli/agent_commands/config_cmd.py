"""lfr-agent config check [FILE] | example"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.cli.common import add_config_arg, config_path
from agent.config import load_config, render_example
from agent.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="check a config file or print the documented example")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    chk = csub.add_parser(
        "check", help="validate FILE; exit 0 when valid, else print every problem"
    )
    chk.add_argument(
        "file", type=Path, nargs="?", help="config to check (default: the --config in effect)"
    )
    add_config_arg(chk)
    chk.set_defaults(handler=cmd_check)
    ex = csub.add_parser("example", help="print the example config with every key and its default")
    ex.set_defaults(handler=cmd_example)


def cmd_check(args: argparse.Namespace) -> int:
    path: Path = args.file if args.file is not None else config_path(args)
    try:
        load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 2
    print(f"{path}: OK")
    return 0


def cmd_example(args: argparse.Namespace) -> int:
    sys.stdout.write(render_example())
    return 0
