"""Shared CLI plumbing: the top-level parser, logging set-up and error handling.

Exit codes (both programs):
  0  success
  1  a check ran and failed (model hash mismatch, invalid token, broken audit chain, doctor ✗)
  2  bad usage or bad input (arguments, config file, unreadable input file)
  3  runtime failure (camera, broker, I/O)
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from agent import __version__
from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config
from agent.errors import LfrError, UsageError

EXIT_CODES_TEXT = """exit codes:
  0    success
  1    a check ran and failed (hash mismatch, invalid token, broken audit chain)
  2    bad usage or bad input (arguments, config, input files)
  3    runtime failure (camera, broker, I/O)
  130  interrupted"""

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit with code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def make_parser(
    prog: str, description: str
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    parser = _Parser(
        prog=prog,
        description=description,
        epilog=EXIT_CODES_TEXT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=None,
        help="log verbosity (default: the config's logging.level, else info)",
    )
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )
    sub.required = True
    return parser, sub


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        type=Path,
        default=None,
        help=f"device config file (default: $LFR_AGENT_CONFIG or {DEFAULT_CONFIG_PATH})",
    )


def config_path(args: argparse.Namespace) -> Path:
    import os

    given = getattr(args, "config", None)
    if given is not None:
        return Path(given)
    env = os.environ.get("LFR_AGENT_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_args_config(args: argparse.Namespace) -> AgentConfig:
    return load_config(config_path(args))


def setup_logging(level: str | None) -> None:
    logging.basicConfig(
        level=getattr(logging, (level or "info").upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_main(
    prog: str,
    description: str,
    command_modules: Sequence[ModuleType],
    argv: Sequence[str] | None = None,
) -> int:
    parser, sub = make_parser(prog, description)
    for module in command_modules:
        module.register(sub)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    handler: Handler = args.handler
    try:
        return handler(args)
    except LfrError as exc:
        for line in (
            str(exc).split("; ")
            if isinstance(exc, LfrError) and hasattr(exc, "problems")
            else [str(exc)]
        ):
            print(f"{prog}: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def require(condition: bool, message: str) -> None:
    """Raise a one-line usage error unless ``condition`` holds."""
    if not condition:
        raise UsageError(message)
