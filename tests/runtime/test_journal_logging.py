"""journald output with structured fields, stderr fallback, and the biometric guard.

journald itself does not run here: the native protocol is checked against a
datagram socket the test binds, and systemd-python's sender is checked for a
clean fallback when journald is absent.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import struct
import sys
import tempfile
from collections.abc import Iterator

import numpy as np
import pytest

from agent.config import LoggingSection
from agent.runtime.journal_logging import (
    JOURNAL_SOCKET,
    BiometricGuard,
    JournaldHandler,
    WarnOnce,
    build_handler,
    configure_from_config,
    systemd_python_sender,
)


def _logger(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(f"test.journal.{id(handler)}")
    log.handlers = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log


def _stderr_logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    return _logger(build_handler("off", stream=stream)), stream


def parse_native(datagram: bytes) -> dict[str, str]:
    """Decode journald's native protocol (KEY=value lines, or KEY\\n<u64 len><data>\\n)."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            fields[key.decode()] = value.decode()
            i = nl + 1
        else:
            (size,) = struct.unpack("<Q", datagram[nl + 1 : nl + 9])
            fields[line.decode()] = datagram[nl + 9 : nl + 9 + size].decode()
            i = nl + 9 + size + 1
    return fields


@pytest.fixture
def journal() -> Iterator[tuple[socket.socket, str]]:
    folder = tempfile.mkdtemp(prefix="lfr-journal-")
    path = os.path.join(folder, "socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()
    shutil.rmtree(folder, ignore_errors=True)


def test_structured_fields_reach_journald(journal: tuple[socket.socket, str]) -> None:
    sock, path = journal
    from pathlib import Path

    log = _logger(build_handler("on", journal_socket=Path(path)))
    log.warning(
        "deployment %s started",
        "dep-7",
        extra={"deployment_id": "dep-7", "state": "active", "alert_id": "a-1"},
    )
    fields = parse_native(sock.recv(65536))
    assert fields["MESSAGE"] == "deployment dep-7 started"
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "lfr-agent"
    assert fields["DEPLOYMENT_ID"] == "dep-7"
    assert fields["STATE"] == "active"
    assert fields["ALERT_ID"] == "a-1"
    assert fields["CODE_FILE"].endswith("test_journal_logging.py")
    assert "CODE_ARGS" not in fields  # arguments are never sent as a field of their own


def test_multiline_messages_use_the_binary_form(journal: tuple[socket.socket, str]) -> None:
    sock, path = journal
    from pathlib import Path

    log = _logger(build_handler("on", journal_socket=Path(path)))
    log.error("broker refused:\nnot authorised")
    fields = parse_native(sock.recv(65536))
    assert fields["MESSAGE"] == "broker refused:\nnot authorised"
    assert fields["PRIORITY"] == "3"


def test_withheld_record_sends_no_content_to_journald(journal: tuple[socket.socket, str]) -> None:
    sock, path = journal
    from pathlib import Path

    log = _logger(build_handler("on", journal_socket=Path(path)))
    log.info("probe", extra={"similarity": 0.8731, "deployment_id": "dep-7"})
    fields = parse_native(sock.recv(65536))
    assert "withheld" in fields["MESSAGE"]
    assert "similarity" in fields["MESSAGE"]  # the reason names the field…
    assert "0.8731" not in repr(fields)  # …never its value
    assert "DEPLOYMENT_ID" not in fields
    assert fields["PRIORITY"] == "4"


def test_stderr_lines_carry_fields_as_suffix() -> None:
    log, stream = _stderr_logger()
    log.info("state change", extra={"state": "idle", "deployment_id": "dep-1"})
    line = stream.getvalue().strip()
    assert line.endswith("INFO " + log.name + ": state change [deployment_id=dep-1 state=idle]")


EMBEDDING = [0.0123, -0.0456, 0.0789, 0.1011, -0.1213, 0.1415, 0.1617, -0.1819, 0.2021]


@pytest.mark.parametrize(
    ("emit", "secret"),
    [
        (lambda log: log.info("match", extra={"score": 0.8731}), "0.8731"),
        (lambda log: log.info("probe", extra={"embedding": EMBEDDING}), "0.0123"),
        (lambda log: log.info("probe %s", EMBEDDING), "0.0123"),
        (lambda log: log.info("probe %s", np.asarray(EMBEDDING, np.float32)), "0.0123"),
        (lambda log: log.info("crop %r", b"\xff\xd8\xff\xe0JFIF"), "JFIF"),
        (lambda log: log.info("track 4 score=0.8731 below threshold"), "0.8731"),
        (lambda log: log.info("best similarity: 0.6612"), "0.6612"),
        (lambda log: log.info("vector " + " ".join(map(str, EMBEDDING))), "0.0123"),
        (lambda log: log.info(f"vector {[v / 3 for v in EMBEDDING]}"), "0.0041"),
        (lambda log: log.info("track %d", 4, extra={"track_quality": "good"}), "good"),
        (lambda log: log.info("ok", extra={"state": {"score": 1}}), "score"),
    ],
    ids=[
        "score-extra",
        "embedding-extra",
        "list-arg",
        "array-arg",
        "bytes-arg",
        "score-text",
        "similarity-text",
        "decimal-run",
        "long-repr-run",
        "unknown-extra",
        "non-scalar-field",
    ],
)
def test_guard_withholds_biometric_looking_records(emit: object, secret: str) -> None:
    log, stream = _stderr_logger()
    emit(log)  # type: ignore[operator]
    out = stream.getvalue()
    assert "log record withheld" in out
    assert secret not in out
    assert "test_journal_logging.py" in out  # names where the call is, so it can be fixed


def test_guard_withholds_exception_text_with_an_embedding() -> None:
    log, stream = _stderr_logger()
    try:
        raise ValueError("bad probe " + repr(EMBEDDING))
    except ValueError:
        log.exception("matching failed")
    out = stream.getvalue()
    assert "withheld" in out and "0.0123" not in out and "Traceback" not in out


@pytest.mark.parametrize(
    "message",
    [
        "detector.score_threshold = 0.6",
        "threshold 0.45 from activation seq 12",
        "connected to broker 10.0.0.5:8883",
        "model yunet-fp32 sha256 5f1e… version 1.2.3",
        "12.5 fps, 3 dropped",
        "sequence " + "9" * 5000,
    ],
)
def test_guard_lets_operational_messages_through(message: str) -> None:
    log, stream = _stderr_logger()
    log.info(message)
    assert stream.getvalue().rstrip().endswith(message)


def test_guard_counts_and_passes_records_once() -> None:
    guard = BiometricGuard()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "score=%s", (0.9,), None)
    assert guard.filter(record)
    assert guard.filter(record)  # a second handler does not re-judge the rewritten record
    assert guard.withheld == 1
    assert "0.9" not in record.getMessage()


def test_auto_mode_without_journal_stream_logs_to_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    handler = build_handler("auto", stream=io.StringIO())
    assert isinstance(handler, logging.StreamHandler)


@pytest.mark.skipif(systemd_python_sender() is None, reason="systemd-python not installed")
@pytest.mark.skipif(JOURNAL_SOCKET.exists(), reason="journald runs here; fallback not reachable")
def test_systemd_python_sender_falls_back_to_stderr_when_journald_is_absent() -> None:
    stream = io.StringIO()
    handler = build_handler("on", stream=stream)
    assert isinstance(handler, JournaldHandler)
    log = _logger(handler)
    log.info("first", extra={"state": "idle"})
    log.info("second")
    out = stream.getvalue()
    assert out.count("journald unavailable") == 1
    assert "first [state=idle]" in out and "second" in out


def test_native_sender_falls_back_to_stderr_when_socket_is_missing(tmp_path: object) -> None:
    from pathlib import Path

    stream = io.StringIO()
    handler = build_handler("on", stream=stream, journal_socket=Path(str(tmp_path)) / "no-journal")
    log = _logger(handler)
    log.warning("one")
    log.warning("two")
    out = stream.getvalue()
    assert out.count("journald unavailable") == 1
    assert "one" in out and "two" in out


def test_configure_from_config_sets_level_and_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        handler = configure_from_config(LoggingSection(level="warning", journald="off"))
        assert root.handlers == [handler] and root.level == logging.WARNING
        assert any(isinstance(f, BiometricGuard) for f in handler.filters)
        configure_from_config(LoggingSection(level="warning", journald="off"), "debug")
        assert root.level == logging.DEBUG
    finally:
        root.handlers, root.level = saved[0], saved[1]


def test_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    warn = WarnOnce(logging.getLogger("test.warn_once"))
    assert warn("disk", "cannot read %s", "/var/lib/lfr-agent")
    assert not warn("disk", "cannot read %s", "/var/lib/lfr-agent")
    warn.reset("disk")
    assert warn("disk", "cannot read %s", "/var/lib/lfr-agent")
    assert len(caplog.records) == 2
