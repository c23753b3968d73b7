"""The persisted last-accepted sequence: restarts, crashes between write and rename, corruption."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.trust.sequence_store import SequenceStore, SequenceStoreError


def test_starts_at_zero_and_survives_a_restart(tmp_path: Path) -> None:
    SequenceStore.in_state_dir(tmp_path).advance(7)
    again = SequenceStore.in_state_dir(tmp_path)  # new object, as after a restart
    assert again.last() == 7
    with pytest.raises(SequenceStoreError, match="not greater"):
        again.advance(7)
    again.advance(8)
    assert SequenceStore.in_state_dir(tmp_path).last() == 8


def test_read_only_store_refuses_to_advance(tmp_path: Path) -> None:
    with pytest.raises(SequenceStoreError, match="read-only"):
        SequenceStore.in_state_dir(tmp_path, read_only=True).advance(1)
    assert not list(tmp_path.iterdir())


@pytest.mark.fault
def test_crash_between_write_and_rename_keeps_the_old_value(tmp_path: Path) -> None:
    SequenceStore.in_state_dir(tmp_path).advance(5)
    # A real process dies (os._exit) after the new value is written and fsynced to the
    # temporary file but before the rename: what a power cut at that instant leaves.
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from agent.trust.sequence_store import SequenceStore
        os.replace = lambda *a, **k: os._exit(9)
        SequenceStore.in_state_dir(Path({str(tmp_path)!r})).advance(6)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == 9
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".activation-sequence")]
    assert len(leftovers) == 1 and b"6" in leftovers[0].read_bytes()
    store = SequenceStore.in_state_dir(tmp_path)
    assert store.last() == 5
    store.advance(6)
    assert SequenceStore.in_state_dir(tmp_path).last() == 6


@pytest.mark.parametrize("content", [b"", b"{", b'{"last_sequence": -1}', b'{"x": 1}', b"[1]"])
def test_corrupt_file_fails_closed(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "activation-sequence.json").write_bytes(content)
    with pytest.raises(SequenceStoreError, match="corrupt"):
        SequenceStore.in_state_dir(tmp_path).last()
