"""The rigs start the daemon with the shipped unit's Environment= lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import UsageError
from hil.rig.unit_environment import UNIT, unit_environment


def test_the_shipped_unit_environment_is_read() -> None:
    env = unit_environment()
    assert env["ORT_DISABLE_TELEMETRY"] == "1"
    assert env["MALLOC_ARENA_MAX"] == "2" and env["MALLOC_TRIM_THRESHOLD_"] == "131072"
    assert UNIT.name == "lfr-agent.service"


def test_several_lines_quoting_and_later_lines_winning(tmp_path: Path) -> None:
    unit = tmp_path / "a.service"
    unit.write_text(
        "[Service]\n# Environment=IGNORED=1\nEnvironment=A=1 B=2\n"
        'Environment="C=x y" A=3\nExecStart=/bin/true\n'
    )
    assert unit_environment(unit) == {"A": "3", "B": "2", "C": "x y"}


@pytest.mark.parametrize(
    ("line", "message"),
    [("Environment=NOVALUE", "'NOVALUE' is not KEY=VALUE"), ('Environment="A=1', "line 1")],
)
def test_a_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    unit = tmp_path / "bad.service"
    unit.write_text(line + "\n")
    with pytest.raises(UsageError, match=message):
        unit_environment(unit)


def test_a_missing_unit_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the agent's unit"):
        unit_environment(tmp_path / "none.service")
