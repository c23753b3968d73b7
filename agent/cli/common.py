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
from agent.untrusted_text import escaped_output

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


# The top-level --config needs its own dest: argparse copies every subparser default over
# the top-level namespace, so a shared "config" dest would be reset to None.
TOP_CONFIG_DEST = "top_level_config"


def make_parser(
    prog: str, description: str, device_config: bool = False
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
    if device_config:
        parser.add_argument(
            "--config",
            "-c",
            dest=TOP_CONFIG_DEST,
            type=Path,
            default=None,
            help="device config file for any command that reads one; a command's own --config "
            f"wins (default: $LFR_AGENT_CONFIG or {DEFAULT_CONFIG_PATH})",
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


def apply_top_level_config(prog: str, args: argparse.Namespace) -> None:
    """Hand ``lfr-agent --config F COMMAND`` to the command, unless it was given its own."""
    top = getattr(args, TOP_CONFIG_DEST, None)
    if top is None:
        return
    if not hasattr(args, "config"):
        raise UsageError(f"--config: '{prog} {args.command}' reads no device config file")
    if args.config is None:
        args.config = top


def config_log_level(args: argparse.Namespace) -> str | None:
    """``logging.level`` of the config the command will read, when that config is valid.

    Read before the command runs so its own log lines already follow the config. An
    unreadable or invalid config is left for the command itself to report.
    """
    if not hasattr(args, "config"):
        return None
    path = config_path(args)
    if args.config is None and path == DEFAULT_CONFIG_PATH and not path.exists():
        return None
    try:
        return load_config(path).logging.level
    except (LfrError, OSError):
        return None


def setup_logging(level: str | None) -> None:
    logging.basicConfig(
        level=getattr(logging, (level or "info").upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _os_error_line(exc: OSError) -> str:
    """One line naming the path and the reason, e.g. ``/srv/x/out.npy: Not a directory``."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None and exc.filename2 is not None:
        return f"{exc.filename} -> {exc.filename2}: {reason}"
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason


def run_main(
    prog: str,
    description: str,
    command_modules: Sequence[ModuleType],
    argv: Sequence[str] | None = None,
    device_config: bool = False,
) -> int:
    """Parse, set up logging, run the command; map failures to one line and an exit code.

    ``device_config`` adds the top-level ``--config`` (lfr-agent: the device config).
    """
    parser, sub = make_parser(prog, description, device_config)
    for module in command_modules:
        module.register(sub)
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    # Everything a command prints may hold text from outside (a camera's alert fields,
    # a report, a device status): shown escaped, never as terminal control.
    with escaped_output():
        return _run(prog, handler, args)


def _run(prog: str, handler: Handler, args: argparse.Namespace) -> int:
    try:
        apply_top_level_config(prog, args)
        setup_logging(args.log_level or config_log_level(args))
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
    except OSError as exc:
        # A file the command had to read or write failed (permissions, full disk, a path
        # through a regular file): a runtime I/O failure, not a bug. Anything else propagates.
        print(f"{prog}: error: {_os_error_line(exc)}", file=sys.stderr)
        return 3


def require(condition: bool, message: str) -> None:
    """Raise a one-line usage error unless ``condition`` holds."""
    if not condition:
        raise UsageError(message)
