"""The environment the shipped unit gives the daemon, so a rig starts it as systemd does.

``systemd/lfr-agent.service`` is the one place the daemon's environment is set for real
(``Environment=`` lines: the malloc tuning, the telemetry switch). The virtual rig, the
soak and the power-cut site start ``lfr-agent run`` themselves, not through systemd; they
read the same lines here so what they measure is the daemon as it ships.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from agent.errors import UsageError

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "lfr-agent.service"


def unit_environment(unit: Path = UNIT) -> dict[str, str]:
    """``KEY=VALUE`` pairs of the unit's ``Environment=`` lines, later lines winning."""
    try:
        text = unit.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"rig: cannot read the agent's unit {unit}: {exc.strerror}") from exc
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.strip().partition("=")
        if not sep or key.strip() != "Environment":
            continue
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise UsageError(f"rig: {unit.name} line {number}: {exc}") from exc
        for word in words:
            name, eq, setting = word.partition("=")
            if not eq or not name:
                raise UsageError(f"rig: {unit.name} line {number}: {word!r} is not KEY=VALUE")
            env[name] = setting
    return env
