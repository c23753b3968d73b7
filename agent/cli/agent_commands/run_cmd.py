"""lfr-agent run: the daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse

from agent.cli.common import add_config_arg, load_args_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run the agent daemon (camera closed until a signed activation arrives)",
        description="Run the agent. It verifies its models and keys, connects to the broker "
        "(or stores alerts until it can), and opens the camera only while a signed activation "
        "is live. Stops cleanly on SIGTERM.",
    )
    add_config_arg(p)
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from agent.runtime.daemon import AgentDaemon
    from agent.runtime.journal_logging import configure_from_config

    cfg = load_args_config(args)
    configure_from_config(cfg.logging, args.log_level)
    daemon = AgentDaemon(cfg)  # refuses to start on a model, key or trust problem
    # Before start(): a SIGTERM during the start-up broker wait must still stop cleanly.
    daemon.install_signal_handlers()
    try:
        daemon.start()
        daemon.run_until_stopped()
    finally:
        daemon.shutdown()
    return 0
