"""``lfr-hub``: the operator side."""

from __future__ import annotations

from collections.abc import Sequence

from agent.cli.common import run_main

DESCRIPTION = """Live facial recognition hub tools (operator side): keys, activations,
watchlists, alert receipt and adjudication, deployment reports."""

COMMANDS: list = []  # type: ignore[type-arg]


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("lfr-hub", DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
