"""``lfr-agent``: the device side."""

from __future__ import annotations

from collections.abc import Sequence

from agent.cli.agent_commands import (
    activation_cmd,
    audit_cmd,
    bench_cmd,
    camera_cmd,
    config_cmd,
    embed_cmd,
    eval_cmd,
    models,
    update_lock_cmd,
    watchlist_cmd,
)
from agent.cli.common import run_main

DESCRIPTION = """Live facial recognition edge agent (device side).

The camera is opened only while a signed activation is live; faces that do
not match the deployment watchlist are discarded in memory at once."""

COMMANDS = [
    models,
    config_cmd,
    camera_cmd,
    embed_cmd,
    eval_cmd,
    watchlist_cmd,
    bench_cmd,
    update_lock_cmd,
    activation_cmd,
    audit_cmd,
]


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("lfr-agent", DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
