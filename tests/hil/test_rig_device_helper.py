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
        ("clock", "set", "$(reboot)"),
        ("cat", "/etc/shadow"),
        (),
    ],
)
def test_anything_else_is_refused(helper: Path, args: tuple[str, ...]) -> None:
    proc = run(helper, *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("lfr-hil-helper: ") and proc.stderr.count("\n") == 1
    assert "PRIVATE" not in proc.stdout
