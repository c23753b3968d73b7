"""Stopping a long HIL run from outside tears its site down like Ctrl-C does.

A soak or rig run holds network namespaces, firewall rules, a broker, a hub and a
daemon; only the run's own ``finally`` removes them. SIGTERM (a CI timeout, ``kill``)
and a SIGINT that the launching shell set to be ignored (a job started with ``&``)
would otherwise end the run without it and leave the site behind.
"""

from __future__ import annotations

import signal
from types import FrameType


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def interrupt_on_stop_signals() -> None:
    """SIGTERM and SIGINT raise KeyboardInterrupt in the main thread from now on."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
