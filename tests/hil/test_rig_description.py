"""The rig description: the shipped rigs load, and every kind of mistake is one line naming
the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import UsageError
from hil.rig.rig_description import SCENARIO_NAMES, load_rig

RIGS = Path(__file__).resolve().parents[2] / "hil" / "rigs"

REAL = """
[rig]
kind = "real"
[device]
where = "ssh"
ssh = "lfr@192.0.2.10"
[broker]
where = "remote"
host = "hub.example"
ca_file = "ca.pem"
cert_file = "c.pem"
key_file = "k.pem"
[hub]
hub_dir = "/var/lib/lfr-hub/keys"
operator = "supervisor-1"
[feed]
kind = "monitor"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rig.toml"
    path.write_text(text)
    return path


def problem(tmp_path: Path, text: str) -> str:
    with pytest.raises(UsageError) as err:
        load_rig(write(tmp_path, text))
    message = str(err.value)
    assert "\n" not in message
    return message


def test_shipped_rigs_load() -> None:
    virtual = load_rig(RIGS / "virtual.toml")
    assert virtual.kind == "virtual" and virtual.feed.kind == "replay"
    assert set(virtual.scenarios) == set(SCENARIO_NAMES)
    short = virtual.shortened()
    assert short.feed.passes < virtual.feed.passes
    assert short.partition_s < virtual.partition_s
    real = load_rig(RIGS / "real-rig.example.toml")
    assert real.kind == "real" and real.device.ssh and real.broker.where == "remote"


def test_an_empty_file_is_the_default_virtual_rig(tmp_path: Path) -> None:
    rig = load_rig(write(tmp_path, ""))
    assert rig.kind == "virtual" and rig.isolation == "auto"
    assert rig.scenarios == SCENARIO_NAMES
    assert rig.shortened() == rig  # no [short] section: --short changes nothing


def test_a_real_rig_with_everything_given_loads(tmp_path: Path) -> None:
    rig = load_rig(write(tmp_path, REAL))
    assert rig.hub_operator == "supervisor-1" and rig.broker.port == 8883
    assert rig.device.helper == "/usr/local/sbin/lfr-hil-helper"  # the default


def test_the_example_real_rig_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "hil" / "rigs" / "real-rig.example.toml"
    rig = load_rig(example)
    assert rig.kind == "real" and rig.device.helper.endswith("lfr-hil-helper")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[feed]\nfps = 0", "[feed] fps: must be within 1..60, got 0"),
        ('[feed]\nfps = "ten"', "[feed] fps: must be an integer, got str"),
        ("[feed]\nseconds = 1000", "[feed] seconds: must be within 2..120"),
        ("[feed]\nwatched = []", "[feed] watched: at least one watchlist identity is needed"),
        ("[feed]\nwatched = [1]", "[feed] watched: must be a list of non-empty strings"),
        ('[feed]\nwatched = ["a"]\npassers_by = ["a"]', "[feed] a: an identity may be in only one"),
        ("[feed]\ncolour = 1", "[feed] colour: unknown key"),
        ("[cameras]\nx = 1", "[cameras]: unknown section"),
        ("feed = 3", "[feed]: must be a table"),
        (
            '[network]\nisolation = "vpn"',
            "[network] isolation: must be one of auto, netns, loopback",
        ),
        ("[network]\npartition_s = 0.5", "[network] partition_s: must be within 1..600"),
        ('[scenarios]\nrun = ["fly"]', "[scenarios] run: unknown scenario 'fly'"),
        ('[scenarios]\nrun = ["faults", "faults"]', "[scenarios] run: must not repeat a name"),
        ('[device]\nwhere = "ssh"', '[device] ssh: required when where = "ssh"'),
        ('[device]\nwhere = "ssh"\nssh = "a@b"', "[device] where: a virtual rig runs the device"),
        ('[feed]\nkind = "monitor"', '[feed] kind: a virtual rig replays the scene ("replay")'),
        ("[short]\npasses = 0", "[short] passes: must be within 1..50, got 0"),
        ("[broker]\nport = 70000", "[broker] port: must be within 1..65535, got 70000"),
        # Raw sudo commands are gone: the rig runs only the helper on the device.
        ('[device]\nlog_command = "journalctl"', "[device] log_command: unknown key"),
        ("[device]\nhelper = 3", "[device] helper: must be a string, got int"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problem(tmp_path, text)


def test_a_real_rig_names_every_missing_piece(tmp_path: Path) -> None:
    message = problem(tmp_path, '[rig]\nkind = "real"')
    for piece in (
        '[device] where: a real rig reaches its device over "ssh"',
        '[broker] where: a real rig uses the site broker ("remote")',
        "[hub] hub_dir: required",
        "[hub] operator: required",
    ):
        assert piece in message


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    message = problem(tmp_path, "[feed]\nfps = 0\nwidth = 5")
    assert "[feed] fps" in message and "[feed] width" in message


def test_bad_toml_and_missing_files_are_one_line(tmp_path: Path) -> None:
    assert "not valid TOML" in problem(tmp_path, "[feed\n")
    with pytest.raises(UsageError, match="cannot read"):
        load_rig(tmp_path / "absent.toml")


def test_short_overrides_apply(tmp_path: Path) -> None:
    rig = load_rig(
        write(
            tmp_path,
            "[feed]\npasses = 5\nseconds = 10\n[network]\npartition_s = 20\n"
            '[short]\npasses = 1\nseconds = 4\npartition_s = 5\nrun = ["retention"]\n',
        )
    )
    short = rig.shortened()
    assert (short.feed.passes, short.feed.seconds, short.partition_s) == (1, 4.0, 5.0)
    assert short.scenarios == ("retention",)
    assert (rig.feed.passes, rig.scenarios) == (5, SCENARIO_NAMES)
