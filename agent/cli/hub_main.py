"""``lfr-hub``: the operator side."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from agent.cli.common import run_main
from agent.cli.hub_commands import (
    activation_cmd,
    alerts_cmd,
    device_cmd,
    keys_cmd,
    operator_cmd,
    pki_cmd,
    publish_cmd,
    reports_cmd,
    watchlist_cmd,
)

DESCRIPTION = """Live facial recognition hub tools (operator side): keys, activations,
watchlists, alert receipt and adjudication, deployment reports."""

COMMANDS: list[ModuleType] = [
    keys_cmd,
    operator_cmd,
    activation_cmd,
    pki_cmd,
    alerts_cmd,
    watchlist_cmd,
    publish_cmd,
    reports_cmd,
    device_cmd,
]


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("lfr-hub", DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
