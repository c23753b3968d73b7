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
    AuditFieldRefused,
    AuditLog,
    AuditLogError,
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
    line[j] ^= data.draw(st.integers(1, 127))
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
    from agent.trust.audit_log import line_hash

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


def test_fake_recovery_entry_cannot_hide_an_edit(tmp_path: Path) -> None:
    lines = _lines(_write_log(tmp_path / "a.jsonl", 6))
    lines[2] = b"garbage"
    with pytest.raises(AuditLogError, match="line 3"):
        verify_audit_log(b"\n".join(lines) + b"\n", PUB)


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
