"""The hash-chained audit log: appends, checkpoints, tampering, torn lines, refused fields."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.trust.audit_log import (
    GENESIS_PREV,
    SECURITY_EVENT_PREFIXES,
    AuditFieldRefused,
    AuditLog,
    AuditLogError,
    line_hash,
    verify_audit_log,
)
from agent.trust.signed_document import canonical_json

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()


def _write_log(path: Path, n: int, every: int = 4) -> bytes:
    log = AuditLog.open(path, KEY, every)
    for i in range(n):
        log.append("test.event", index=i, note=f"entry {i}", ok=True, ratio=0.5, none=None)
    log.close()
    return path.read_bytes()


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def _rechain(entries: list[dict[str, object]]) -> bytes:
    """Lines for ``entries`` with seq and prev recomputed: what an attacker without the
    device key can do after editing. Checkpoint signatures stay as they were."""
    prev, out = GENESIS_PREV, []
    for seq, e in enumerate(entries, start=1):
        e["seq"], e["prev"] = seq, prev
        line = canonical_json(e)
        prev = line_hash(line)
        out.append(line)
    return b"\n".join(out) + b"\n"


def test_entries_chain_and_checkpoints_verify(tmp_path: Path) -> None:
    data = _write_log(tmp_path / "audit.jsonl", 10, every=4)
    report = verify_audit_log(data, PUB)
    # 10 entries + checkpoints after 4, 8 and on close.
    assert report.entries == 13 and report.checkpoints == 3 and report.unsigned_tail == 0
    first = json.loads(_lines(data)[0])
    assert first["prev"] == "0" * 64 and first["seq"] == 1 and first["fields"]["index"] == 0


def test_reopen_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write_log(path, 3)
    log = AuditLog.open(path, KEY, 4)
    log.append("after.restart")
    log.close()
    report = verify_audit_log(path.read_bytes(), PUB)
    assert report.entries == 6 and report.checkpoints == 2


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_edited_line_is_detected(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    raw = _write_log(tmp_path_factory.mktemp("a") / "audit.jsonl", 6, every=3)
    lines = _lines(raw)
    i = data.draw(st.integers(0, len(lines) - 1))
    j = data.draw(st.integers(0, len(lines[i]) - 1))
    line = bytearray(lines[i])
    # Any other byte value: a zero byte in the last line is what a torn write leaves
    # (reported as a torn tail, see the torn-line tests).
    line[j] = data.draw(st.integers(1, 255).filter(lambda b: b != line[j]))
    lines[i] = bytes(line)
    with pytest.raises(AuditLogError):
        verify_audit_log(b"\n".join(lines) + b"\n", PUB)


def test_removed_line_is_detected(tmp_path: Path) -> None:
    lines = _lines(_write_log(tmp_path / "a.jsonl", 6))
    del lines[2]
    with pytest.raises(AuditLogError, match="removed or reordered"):
        verify_audit_log(b"\n".join(lines) + b"\n", PUB)


def test_reordered_lines_are_detected(tmp_path: Path) -> None:
    lines = _lines(_write_log(tmp_path / "a.jsonl", 6))
    lines[1], lines[2] = lines[2], lines[1]
    with pytest.raises(AuditLogError, match="line 2"):
        verify_audit_log(b"\n".join(lines) + b"\n", PUB)


def test_line_truncated_in_the_middle_is_detected(tmp_path: Path) -> None:
    lines = _lines(_write_log(tmp_path / "a.jsonl", 6))
    lines[3] = lines[3][:20]
    with pytest.raises(AuditLogError, match="line 4: not a valid entry"):
        verify_audit_log(b"\n".join(lines) + b"\n", PUB)


def test_rewritten_chain_fails_the_checkpoint_signature(tmp_path: Path) -> None:
    # An attacker edits an entry and recomputes every later hash, but cannot re-sign.
    lines = _lines(_write_log(tmp_path / "a.jsonl", 3, every=10))
    entries = [json.loads(x) for x in lines]
    entries[0]["fields"]["note"] = "nothing happened"
    prev = "0" * 64
    out = []
    for e in entries:
        e["prev"] = prev
        line = canonical_json(e)
        prev = line_hash(line)
        out.append(line)
    with pytest.raises(AuditLogError, match="checkpoint signature does not verify"):
        verify_audit_log(b"\n".join(out) + b"\n", PUB)


def test_checkpoint_by_another_key_is_detected(tmp_path: Path) -> None:
    data = _write_log(tmp_path / "a.jsonl", 2)
    with pytest.raises(AuditLogError, match="another key"):
        verify_audit_log(data, Ed25519PrivateKey.generate().public_key())


@pytest.mark.fault
def test_torn_final_line_is_reported_then_recovered(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    full = _write_log(path, 5)
    # A power cut in the middle of writing one more line.
    torn = b'{"event":"test.event","fields":{"ind'
    path.write_bytes(full + torn)
    report = verify_audit_log(path.read_bytes(), PUB)
    n_lines = len(_lines(full)) + 1
    assert report.torn_tail_line == n_lines and report.entries == n_lines - 1
    log = AuditLog.open(path, KEY, 4)
    assert log.recovered_torn_line == n_lines
    log.append("after.recovery")
    log.close()
    report = verify_audit_log(path.read_bytes(), PUB)
    assert report.torn_tail_line is None and report.recovered_lines == [n_lines]
    entries = [json.loads(x) for x in _lines(path.read_bytes())[n_lines:]]
    assert entries[0]["event"] == "audit.recovered" and entries[0]["fields"]["torn_line"] == n_lines


@pytest.mark.fault
@pytest.mark.parametrize("lost", ["head", "middle"])
def test_a_torn_line_that_kept_its_newline_is_recovered(tmp_path: Path, lost: str) -> None:
    # Power-cut crash points "audit append torn sequence" and "audit append torn write":
    # one write of one line reached the disk in pieces, and the piece holding the
    # newline was kept while an earlier one was lost (zeros in its place).
    path = tmp_path / "a.jsonl"
    full = _write_log(path, 5)
    line = canonical_json(
        {"event": "test.event", "fields": {"index": 99}, "prev": "0" * 64, "seq": 99, "time": "x"}
    )
    cut = slice(0, 20) if lost == "head" else slice(20, 40)
    torn = bytearray(line)
    torn[cut] = bytes(len(torn[cut]))
    path.write_bytes(full + bytes(torn) + b"\n")
    n_lines = len(_lines(full)) + 1
    assert verify_audit_log(path.read_bytes(), PUB).torn_tail_line == n_lines
    log = AuditLog.open(path, KEY, 4)
    assert log.recovered_torn_line == n_lines
    log.append("after.recovery")
    log.close()
    report = verify_audit_log(path.read_bytes(), PUB)
    assert report.torn_tail_line is None and report.recovered_lines == [n_lines]


def test_an_edited_last_line_that_keeps_its_newline_is_not_taken_for_torn(
    tmp_path: Path,
) -> None:
    lines = _lines(_write_log(tmp_path / "a.jsonl", 5))
    lines[-1] = lines[-1].replace(b'"seq"', b'"Seq"')
    with pytest.raises(AuditLogError, match="not a valid entry"):
        verify_audit_log(b"\n".join(lines) + b"\n", PUB)


def test_fake_recovery_entry_cannot_hide_an_edit(tmp_path: Path) -> None:
    lines = _lines(_write_log(tmp_path / "a.jsonl", 6))
    assert json.loads(lines[4])["event"] == "audit.checkpoint"  # signs lines 1–4
    # Line 3 is replaced by garbage and a forged recovery entry, chained to line 2 exactly
    # as the agent would write it, is put right after it.
    forged = canonical_json(
        {
            "event": "audit.recovered",
            "fields": {"torn_bytes": 7, "torn_line": 3},
            "prev": line_hash(lines[1]),
            "seq": 3,
            "time": json.loads(lines[2])["time"],
        }
    )
    tampered = [*lines[:2], b"garbage", forged, *lines[3:]]
    with pytest.raises(AuditLogError, match="line 5 .*does not chain"):
        verify_audit_log(b"\n".join(tampered) + b"\n", PUB)
    # Renumbering and re-chaining everything after it still leaves the next checkpoint
    # signature, which covers the original chain.
    entries = [json.loads(x) for x in lines[:2]] + [json.loads(forged)]
    entries += [json.loads(x) for x in lines[3:]]
    rechained = _lines(_rechain(entries))
    with pytest.raises(AuditLogError, match="checkpoint signature does not verify"):
        verify_audit_log(b"\n".join([*rechained[:2], b"garbage", *rechained[2:]]) + b"\n", PUB)


def test_recovery_event_is_reserved(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "a.jsonl", KEY, 4)
    with pytest.raises(AuditFieldRefused, match="reserved"):
        log.append("audit.recovered", torn_line=1)
    log.close()


@pytest.mark.fault
def test_complete_last_entry_without_newline_is_continued(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    full = _write_log(path, 3)
    path.write_bytes(full[:-1])  # the final newline is lost, the entry itself is whole
    log = AuditLog.open(path, KEY, 4)
    assert log.recovered_torn_line is None
    log.append("after.restart")
    log.close()
    report = verify_audit_log(path.read_bytes(), PUB)
    assert report.recovered_lines == [] and report.torn_tail_line is None
    assert report.entries == len(_lines(full)) + 2
    events = [json.loads(x)["event"] for x in _lines(path.read_bytes())]
    assert "audit.recovered" not in events and events[-2] == "after.restart"
    # And it stays verifiable across a second restart.
    log = AuditLog.open(path, KEY, 4)
    log.append("second.restart")
    log.close()
    verify_audit_log(path.read_bytes(), PUB)


def _crash(log: AuditLog) -> None:
    """The process dies: the file is left as written, no closing checkpoint."""
    import os

    os.close(log._fd)
    log._closed = True


def test_security_entries_are_signed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog.open(path, KEY, 50)
    kinds = [p + "x" for p in SECURITY_EVENT_PREFIXES]
    for i, kind in enumerate(kinds):
        log.append("test.event", index=i)
        log.append(kind, index=i)
    log.append("test.event", index=99)
    _crash(log)
    lines = _lines(path.read_bytes())
    events = [json.loads(x)["event"] for x in lines]
    for i, event in enumerate(events):
        if event.startswith(SECURITY_EVENT_PREFIXES):
            assert events[i + 1] == "audit.checkpoint", event
    report = verify_audit_log(path.read_bytes(), PUB)
    assert report.checkpoints == len(kinds)
    # The unsigned tail holds no security entry to edit: only the last plain one.
    assert report.unsigned_tail == 1 and events[-1] == "test.event"
    assert not any(e.startswith(SECURITY_EVENT_PREFIXES) for e in events[-report.unsigned_tail :])


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_edit_anywhere_before_the_last_checkpoint_is_detected(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("a") / "audit.jsonl"
    log = AuditLog.open(path, KEY, 50)
    log.append("test.event", note="plain")
    log.append("control.rejected", step="signature")
    log.append("test.event", note="plain")
    log.append("gate.closed", reason="stopped")
    log.append("test.event", note="tail")
    _crash(log)
    entries = [json.loads(x) for x in _lines(path.read_bytes())]
    last_cp = max(i for i, e in enumerate(entries) if e["event"] == "audit.checkpoint")
    i = data.draw(st.integers(0, last_cp))
    entries[i]["fields"]["note"] = "edited"
    # Even with every hash and sequence recomputed, a checkpoint signature fails.
    with pytest.raises(AuditLogError):
        verify_audit_log(_rechain(entries), PUB)


def test_head_anchors_the_last_entry(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog.open(path, KEY, 4)
    assert log.head() == (0, GENESIS_PREV)
    log.append("test.event", index=1)
    seq, digest = log.head()
    last = _lines(path.read_bytes())[-1]
    assert seq == json.loads(last)["seq"] == 1 and digest == line_hash(last)
    log.close()
    reopened = AuditLog.open(path, KEY, 4)
    assert reopened.head() == log.head()  # the closing checkpoint is the last entry
    reopened.close()
    assert verify_audit_log(path.read_bytes(), PUB).head == log.head()


@pytest.mark.parametrize(
    "line",
    [
        b"[" * 200_000,
        b'{"seq":' + b"1" * 5000 + b"}",
        b'{"event":"x","fields":{},"prev":"' + b"0" * 64 + b'","seq":1,"time":NaN}',
        b'{"event":"x","fields":{"a":1e400},"prev":"0","seq":1,"time":"t"}',
        b'{"event":"\\ud800","fields":{},"prev":"0","seq":1,"time":"t"}',
        b'{"event":"x","event":"y","fields":{},"prev":"0","seq":1,"time":"t"}',
    ],
)
def test_hostile_lines_fail_verification_cleanly(tmp_path: Path, line: bytes) -> None:
    lines = _lines(_write_log(tmp_path / "a.jsonl", 3))
    with pytest.raises(AuditLogError, match="line 2: not a valid entry"):
        verify_audit_log(b"\n".join([lines[0], line, *lines[1:]]) + b"\n", PUB)
    # As the last line it is a torn tail; reopening keeps it and continues the chain.
    path = tmp_path / "b.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n" + line)
    log = AuditLog.open(path, KEY, 4)
    assert log.recovered_torn_line == len(lines) + 1
    log.close()
    assert verify_audit_log(path.read_bytes(), PUB).recovered_lines == [len(lines) + 1]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"embedding": "x"}, "biometric"),
        ({"face_crop": "x"}, "biometric"),
        ({"best_score": 0.7}, "biometric"),
        ({"image_jpeg": "x"}, "biometric"),
        ({"data": b"bytes"}, "only str"),
        ({"values": [1, 2]}, "only str"),
        ({"note": "x" * 300}, "longer"),
        ({"Bad-Name": 1}, "not allowed"),
        ({"ratio": float("nan")}, "finite"),
    ],
)
def test_biometric_or_unsafe_fields_are_refused(
    tmp_path: Path, fields: dict[str, object], message: str
) -> None:
    log = AuditLog.open(tmp_path / "a.jsonl", KEY, 4)
    with pytest.raises(AuditFieldRefused, match=message):
        log.append("alert.raised", **fields)  # type: ignore[arg-type]
    log.close()
    assert b"alert.raised" not in (tmp_path / "a.jsonl").read_bytes()


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "a.jsonl", KEY, 7)

    def writer(k: int) -> None:
        for i in range(25):
            log.append("thread.event", writer=k, index=i)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    report = verify_audit_log((tmp_path / "a.jsonl").read_bytes(), PUB)
    assert report.entries - report.checkpoints == 100


def test_closed_log_refuses_appends(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "a.jsonl", KEY, 4)
    log.close()
    with pytest.raises(Exception, match="closed"):
        log.append("late")


def _key_file(folder: Path) -> Path:
    """The device key as a PEM file, for a writer in another process."""
    from cryptography.hazmat.primitives import serialization

    path = folder / "key.pem"
    path.write_bytes(
        KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_two_writers_holding_the_log_open_keep_one_chain(tmp_path: Path) -> None:
    # The daemon keeps the log open while a technician's command (watchlist wipe,
    # camera probe) opens it too: each must continue from what the other wrote.
    path = tmp_path / "a.jsonl"
    daemon = AuditLog.open(path, KEY, 50)
    daemon.append("daemon.event", index=0)
    technician = AuditLog.open(path, KEY, 50)
    technician.append("watchlist.wiped", reason="operator")
    daemon.append("daemon.event", index=1)
    technician.append("technician.event", index=2)
    technician.close()
    daemon.append("gate.opened")
    daemon.close()
    report = verify_audit_log(path.read_bytes(), PUB)
    events = [json.loads(line)["event"] for line in _lines(path.read_bytes())]
    assert [e for e in events if e != "audit.checkpoint"] == [
        "daemon.event",
        "watchlist.wiped",
        "daemon.event",
        "technician.event",
        "gate.opened",
    ]
    assert report.unsigned_tail == 0


def test_writers_in_other_processes_keep_one_chain(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "a.jsonl"
    key_file = _key_file(tmp_path)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from cryptography.hazmat.primitives import serialization\n"
        "from agent.trust.audit_log import AuditLog\n"
        "key = serialization.load_pem_private_key(Path(sys.argv[2]).read_bytes(), None)\n"
        "log = AuditLog.open(Path(sys.argv[1]), key, 5)\n"
        "for i in range(60):\n"
        "    log.append('proc.event', writer=int(sys.argv[3]), index=i)\n"
        "log.close()\n"
    )
    held_open = AuditLog.open(path, KEY, 5)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(path), str(key_file), str(k)])
        for k in range(3)
    ]
    for i in range(60):
        held_open.append("proc.event", writer=99, index=i)
    assert all(p.wait(timeout=120) == 0 for p in procs)
    held_open.close()
    report = verify_audit_log(path.read_bytes(), PUB)
    assert report.entries - report.checkpoints == 4 * 60


def test_anchors_detect_a_log_cut_back_or_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog.open(path, KEY, 50)
    log.append("test.event", index=0)
    log.append("test.event", index=1)
    anchor = dict([log.head()])  # seq 2, as a deployment report would carry it
    log.append("test.event", index=2)
    log.close()
    data = path.read_bytes()
    assert verify_audit_log(data, PUB, anchor).entries == 4  # three and the closing checkpoint
    # Cut back to before the anchored entry: a valid chain, but too short.
    first = _lines(data)[0]
    with pytest.raises(AuditLogError, match="cut off its end"):
        verify_audit_log(first + b"\n", PUB, anchor)
    # Another log, chained and signed with the same key, in its place.
    other = tmp_path / "b.jsonl"
    forged = AuditLog.open(other, KEY, 50)
    forged.append("test.event", index=0)
    forged.append("test.event", index=99)
    forged.close()
    with pytest.raises(AuditLogError, match="anchored elsewhere"):
        verify_audit_log(other.read_bytes(), PUB, anchor)


def test_a_short_write_on_a_full_disk_is_recovered_by_the_next_entry(tmp_path: Path) -> None:
    # The file cannot grow past a limit (as on a full disk): the kernel writes part of the
    # line. The next entry must not be joined onto the fragment; the fragment is
    # terminated and audit.recovered follows. A child process takes the real limit.
    import subprocess
    import sys

    path = tmp_path / "a.jsonl"
    key_file = _key_file(tmp_path)
    script = """
import resource, signal, sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from agent.errors import LfrError
from agent.trust.audit_log import AuditLog
key = serialization.load_pem_private_key(Path(sys.argv[2]).read_bytes(), None)
log = AuditLog.open(Path(sys.argv[1]), key, 50)
log.append("test.event", index=0)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (Path(sys.argv[1]).stat().st_size + 40, hard))
try:
    log.append("test.event", index=1, note="x" * 100)
    sys.exit("no short write")
except LfrError as exc:
    print(exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
log.append("test.event", index=2)
log.close()
"""
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path), str(key_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "short write" in proc.stdout
    report = verify_audit_log(path.read_bytes(), PUB)
    assert report.recovered_lines == [2]
    events = [json.loads(line)["event"] for line in _lines(path.read_bytes())[2:]]
    assert events[:2] == ["audit.recovered", "audit.checkpoint"]
