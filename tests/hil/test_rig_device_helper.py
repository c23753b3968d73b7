"""The real rig's root helper (hil/rigs/lfr-hil-helper), run here on a copy pointed at a
folder tree of its own: it hands out public keys and file names, never private keys or
other files, and refuses anything it does not know."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

HELPER = Path(__file__).resolve().parents[2] / "hil" / "rigs" / "lfr-hil-helper"


@pytest.fixture
def helper(tmp_path: Path) -> Path:
    state, keys = tmp_path / "state", tmp_path / "keys"
    for d in (state / "outbox", state / "watchlists", keys):
        d.mkdir(parents=True)
    (keys / "device-ed25519-pub.pem").write_text("PUBLIC\n")
    (keys / "device-ed25519-key.pem").write_text("PRIVATE\n")
    (state / "audit.jsonl").write_text('{"seq":1}\n')
    (state / "outbox" / "0001-abc.alert").write_bytes(b"sealed")
    (state / "outbox" / "note.txt").write_text("x")
    (state / "watchlists" / "w1.bundle").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (state / "watchlists" / "w2.bundle").write_bytes(b"sealed\xff\xd8\xff\xe0\x00\x10JFIF..")
    (state / "outbox" / "0002-def.alert").write_bytes(b"\x89PNG\r\n but not the whole header")
    text = HELPER.read_text()
    text = text.replace("STATE=/var/lib/lfr-agent", f"STATE={state}")
    text = text.replace("KEYS=/etc/lfr-agent/keys", f"KEYS={keys}")
    copy = tmp_path / "helper"
    copy.write_text(text)
    copy.chmod(0o755)
    return copy


def run(helper: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helper), *args], capture_output=True, text=True, timeout=30)


def test_public_keys_audit_and_names_are_readable(helper: Path) -> None:
    assert run(helper, "pubkey", "device-ed25519-pub.pem").stdout == "PUBLIC\n"
    assert run(helper, "audit").stdout == '{"seq":1}\n'
    assert sorted(run(helper, "list", "outbox").stdout.split()) == [
        "0001-abc.alert",
        "0002-def.alert",
    ]
    assert sorted(run(helper, "list", "watchlists").stdout.split()) == ["w1.bundle", "w2.bundle"]
    count, *found = run(helper, "images").stdout.splitlines()
    assert int(count) == 6 and sorted(Path(f).name for f in found) == ["w1.bundle", "w2.bundle"]


@pytest.mark.parametrize(
    "args",
    [
        ("pubkey", "device-ed25519-key.pem"),
        ("pubkey", "../keys/device-ed25519-key.pem"),
        ("pubkey", "/etc/shadow"),
        ("list", "/"),
        ("service", "restart-everything"),
        ("partition", "22; rm -rf /"),
        ("clock", "set", "1800000000"),
        ("clock", "shift", "$(reboot)"),
        ("clock", "shift", "1-2"),
        ("clock", "shift", "1.2.3"),
        ("clock", "shift", "-"),
        ("clock", "shift", ""),
        ("cat", "/etc/shadow"),
        (),
    ],
)
def test_anything_else_is_refused(helper: Path, args: tuple[str, ...]) -> None:
    proc = run(helper, *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("lfr-hil-helper: ") and proc.stderr.count("\n") == 1
    assert "PRIVATE" not in proc.stdout


def _with_fake_tools(helper: Path, tmp_path: Path) -> Path:
    """The helper with systemctl, timedatectl and date answering as on a device."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {
        # systemd prints properties in its own order (service ones before unit ones),
        # whatever order -p asked for; with --value only the bare values.
        "systemctl": 'case " $* " in *" --value "*) printf "0\\ninactive\\n" ;;\n'
        '*) printf "ExecMainStatus=0\\nActiveState=inactive\\n" ;; esac',
        "timedatectl": 'echo "timedatectl $*" >> "$LOG"',
        "date": 'if [ "$1" = "+%s.%N" ]; then echo 1800000000.250; '
        'else echo "date $*" >> "$LOG"; fi',
    }
    for name, body in tools.items():
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(0o755)
    text = helper.read_text().replace("PATH=/usr/sbin", f"PATH={bin_dir}:/usr/sbin", 1)
    assert str(bin_dir) in text
    helper.write_text(text)
    return tmp_path / "tools.log"


def test_service_status_names_each_value_so_the_rig_reads_the_exit_status(
    helper: Path, tmp_path: Path
) -> None:
    from hil.rig.real_rig import service_exit_status

    _with_fake_tools(helper, tmp_path)
    proc = run(helper, "service", "status")
    assert proc.returncode == 0, proc.stderr
    assert service_exit_status(proc.stdout) == 0
    assert service_exit_status("ActiveState=failed\nExecMainStatus=143\n") == 143
    assert service_exit_status("0\ninactive\n") == -1  # bare values cannot be told apart
    assert service_exit_status("ExecMainStatus=\u00b2\n") == -1


def test_clock_shift_steps_the_device_clock_from_its_own_time(helper: Path, tmp_path: Path) -> None:
    log = _with_fake_tools(helper, tmp_path)
    env_run = lambda *a: subprocess.run(  # noqa: E731
        [str(helper), *a], capture_output=True, text=True, timeout=30, env={"LOG": str(log)}
    )
    assert env_run("clock", "shift", "7200").returncode == 0
    assert env_run("clock", "shift", "-7200.5").returncode == 0
    assert log.read_text().splitlines() == [
        "timedatectl set-ntp false",
        "date -u -s @1800007200.250",
        "timedatectl set-ntp false",
        "date -u -s @1799992799.750",
    ]


def test_the_rig_sends_the_change_of_offset_not_an_absolute_time() -> None:
    from types import SimpleNamespace

    from hil.rig.real_rig import RealRig

    sent: list[tuple[str, ...]] = []
    rig = SimpleNamespace(_wall_offset=0.0, helper=lambda *a: sent.append(a) or "")
    assert RealRig.set_wall_clock_offset(rig, 7200.0) > 0  # type: ignore[arg-type]
    assert RealRig.set_wall_clock_offset(rig, -3600.0) > 0  # type: ignore[arg-type]
    assert sent == [("clock", "shift", "7200.000"), ("clock", "shift", "-10800.000")]
    assert rig._wall_offset == -3600.0
