"""lfr-agent update-lock status"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent.cli.common import add_config_arg, config_path
from agent.config import DEFAULT_CONFIG_PATH, PathsSection, load_config
from agent.runtime.update_lock import lock_path, read_status


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("update-lock", help="show whether a live deployment holds the update lock")
    usub = p.add_subparsers(dest="update_lock_command", metavar="ACTION", required=True)
    st = usub.add_parser(
        "status",
        help="exit 0 when no deployment is live (updates may run), 1 while the lock is held",
    )
    st.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="lock file (default: deployment.lock in the config's paths.runtime_dir)",
    )
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    add_config_arg(st)
    st.set_defaults(handler=cmd_status)


def _lock_file(args: argparse.Namespace) -> Path:
    if args.lock is not None:
        return Path(args.lock)
    path = config_path(args)
    if args.config is None and path == DEFAULT_CONFIG_PATH and not path.exists():
        return lock_path(PathsSection().runtime_dir)
    return lock_path(load_config(path).paths.runtime_dir)


def cmd_status(args: argparse.Namespace) -> int:
    status = read_status(_lock_file(args))
    if args.json:
        print(
            json.dumps(
                {
                    "lock": str(status.path),
                    "held": status.held,
                    "deployment_id": status.deployment_id,
                    "pid": status.pid,
                    "since": status.since,
                },
                sort_keys=True,
            )
        )
    else:
        print(status.describe())
    return 1 if status.held else 0
