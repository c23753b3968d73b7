"""``lfr-hub``: the operator side."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from agent.hub.malloc_arenas import use_one_malloc_arena

# Before the imports below, not in main(): they load libraries that start native threads
# (onnxruntime and OpenCV, for the console's watchlist checks), and a thread's C-heap
# arena is chosen by its first allocation.
use_one_malloc_arena()

from agent.cli.common import run_main  # noqa: E402
from agent.cli.hub_commands import (  # noqa: E402
    activation_cmd,
    alerts_cmd,
    audit_cmd,
    broker_cmd,
    calibrate_cmd,
    device_cmd,
    evidence_cmd,
    hotlist_cmd,
    keys_cmd,
    operator_cmd,
    pki_cmd,
    plates_cmd,
    publish_cmd,
    reports_cmd,
    results_cmd,
    serve_cmd,
    user_cmd,
    watchlist_cmd,
)

DESCRIPTION = """Live facial recognition hub tools (operator side): keys, activations,
watchlists and plate hotlists, threshold calibration, alert receipt and adjudication,
clips and recording, deployment reports and the public results."""

COMMANDS: list[ModuleType] = [
    keys_cmd,
    operator_cmd,
    activation_cmd,
    pki_cmd,
    broker_cmd,
    alerts_cmd,
    plates_cmd,
    watchlist_cmd,
    hotlist_cmd,
    calibrate_cmd,
    publish_cmd,
    reports_cmd,
    results_cmd,
    device_cmd,
    evidence_cmd,
    serve_cmd,
    user_cmd,
    audit_cmd,
]


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("lfr-hub", DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
