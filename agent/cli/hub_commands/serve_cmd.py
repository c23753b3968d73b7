"""lfr-hub serve — the hub as a service (intake and web console); lfr-hub config
example|check — its config file."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from agent.cli.hub_commands.hub_config_args import add_hub_config_arg, hub_config
from agent.hub.service.hub_config import LoggingSection, load_hub_config, render_hub_example
from agent.hub.service.hub_service import serve


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the hub: alert intake and the web console")
    add_hub_config_arg(p)
    p.set_defaults(handler=cmd_serve)

    c = sub.add_parser("config", help="the hub config file: example, check")
    csub = c.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    ex = csub.add_parser("example", help="print the documented example config")
    ex.set_defaults(handler=cmd_example)
    ch = csub.add_parser("check", help="validate a hub config file")
    ch.add_argument("file", type=Path)
    ch.set_defaults(handler=cmd_check)


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = hub_config(args)
    if args.log_level is None:
        logging.getLogger().setLevel(cfg.logging.level.upper())
    else:  # the command line wins, for the web server's log too
        cfg = dataclasses.replace(cfg, logging=LoggingSection(level=args.log_level))
    return serve(cfg)


def cmd_example(args: argparse.Namespace) -> int:
    print(render_hub_example(), end="")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    load_hub_config(args.file)
    print(f"{args.file}: valid")
    return 0
