"""``lfr-agent``: the device side."""

from __future__ import annotations

import os

# One probe against the gallery is a small matrix product: BLAS's thread pool only adds
# contention with the camera and model threads (measured by `lfr-agent bench`,
# match_ms_* vs match_ms_*_blas1). Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# OpenCV's own console chatter (e.g. DNN back-end notices) is not for technicians.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

from collections.abc import Sequence

from agent.cli.agent_commands import (
    activation_cmd,
    audit_cmd,
    bench_cmd,
    camera_cmd,
    config_cmd,
    doctor_cmd,
    embed_cmd,
    enrol_cmd,
    eval_cmd,
    models,
    run_cmd,
    update_lock_cmd,
    watchlist_cmd,
)
from agent.cli.common import run_main

DESCRIPTION = """Live facial recognition edge agent (device side).

The camera is opened only while a signed activation is live; faces that do
not match the deployment watchlist are discarded in memory at once."""

COMMANDS = [
    run_cmd,
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
    enrol_cmd,
    doctor_cmd,
]


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("lfr-agent", DESCRIPTION, COMMANDS, argv, device_config=True)


if __name__ == "__main__":
    raise SystemExit(main())
