"""Log output: journald with structured fields when available, plain stderr otherwise.

Structured fields travel as ``extra`` on the logging call and must be on the
allow-list below, e.g.::

    log.info("deployment started", extra={"deployment_id": dep, "state": "active"})

journald stores them as ``DEPLOYMENT_ID=…``, ``STATE=…`` (``journalctl -u lfr-agent
DEPLOYMENT_ID=…``); on stderr they are appended as ``[deployment_id=… state=…]``.

The biometric guard (:class:`BiometricGuard`) runs on every handler this module
installs. A record is *withheld* (replaced by a one-line notice that names the
logger, the source line and the reason, never the content) when it carries:

- an ``extra`` attribute that is not on the allow-list (so a ``score=`` or
  ``embedding=`` extra can never slip through under a new name);
- an argument that is an array, raw bytes, a long run of numbers or an image;
- message or exception text that looks like a score (``score=0.83``,
  ``similarity: 0.4``) or a dump of an embedding (a long run of decimals).

Scores, crops and embeddings belong only inside sealed alerts.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import socket
import struct
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from agent.config import LoggingSection

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
SYSLOG_IDENTIFIER = "lfr-agent"

# extra attribute name → journald field name. Only identifiers and states: never a
# number derived from a face.
ALLOWED_FIELDS: Mapping[str, str] = {
    "deployment_id": "DEPLOYMENT_ID",
    "alert_id": "ALERT_ID",
    "activation_seq": "ACTIVATION_SEQ",
    "state": "STATE",
    "device_id": "DEVICE_ID",
    "component": "COMPONENT",
    "model_id": "MODEL_ID",
    "watchlist_id": "WATCHLIST_ID",
    "outbox_depth": "OUTBOX_DEPTH",
    "reason": "REASON",
}
_MAX_FIELD_CHARS = 256

_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_GUARDED_ATTR = "_lfr_guarded"

_SCORE_TEXT = re.compile(
    r"\b(score|similarity|cosine|distance|confidence)\s*[=:]\s*[-+]?\d", re.IGNORECASE
)
# Bounded quantifiers and the look-behind keep this linear on hostile input (long digit runs).
_NUMBER_RUN_TEXT = re.compile(
    r"(?<![\d.])(?:[-+]?\d{0,8}\.\d{1,20}(?:e[-+]?\d{1,3})?[\s,;\]\[]{1,8}){7,}", re.IGNORECASE
)
_MAX_NUMBERS_IN_ARG = 6

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class WarnOnce:
    """Log a warning the first time each kind of failure happens, then stay quiet.

    Used for degraded features (notify socket gone, thermal file unreadable) that
    would otherwise flood the log every few seconds.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str, *args: object) -> bool:
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
        with contextlib.suppress(Exception):  # logging must never take the agent down
            self._logger.warning(message, *args)
        return True

    def reset(self, key: str) -> None:
        """Forget ``key`` so the next failure of that kind is reported again."""
        with self._lock:
            self._seen.discard(key)


def _is_biometric_arg(value: object) -> str | None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "raw bytes"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return "an array"
    if hasattr(value, "image") and hasattr(getattr(value, "image", None), "shape"):
        return "an image"
    if isinstance(value, (list, tuple, set, frozenset)):
        numbers = sum(1 for v in value if isinstance(v, (int, float)) and not isinstance(v, bool))
        if numbers > _MAX_NUMBERS_IN_ARG:
            return "a run of numbers"
        for v in value:
            reason = _is_biometric_arg(v)
            if reason:
                return reason
    if isinstance(value, Mapping):
        for k, v in value.items():
            reason = _is_biometric_arg(v) or _text_problem(str(k))
            if reason:
                return reason
    return None


def _text_problem(text: str) -> str | None:
    if _SCORE_TEXT.search(text):
        return "score-like text"
    if _NUMBER_RUN_TEXT.search(text):
        return "a run of decimals"
    return None


def _record_problem(record: logging.LogRecord) -> str | None:
    for name in record.__dict__.keys() - _STANDARD_ATTRS:
        if name.startswith("_lfr_"):
            continue
        if name not in ALLOWED_FIELDS:
            return f"field {name!r} is not on the allow-list"
        value = record.__dict__[name]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return f"field {name!r} is not a string or integer"
        if isinstance(value, str) and (len(value) > _MAX_FIELD_CHARS or _text_problem(value)):
            return f"field {name!r} does not look like an identifier"
    args: Any = record.args
    if args:
        items = args.values() if isinstance(args, Mapping) else args
        for arg in items:
            reason = _is_biometric_arg(arg)
            if reason:
                return f"an argument is {reason}"
    try:
        text = record.getMessage()
    except Exception:
        return "the message cannot be formatted"
    reason = _text_problem(text)
    if reason:
        return f"the message contains {reason}"
    if record.exc_info and record.exc_info[1] is not None:
        reason = _text_problem(str(record.exc_info[1]))
        if reason:
            return f"the exception text contains {reason}"
    return None


class BiometricGuard(logging.Filter):
    """A handler filter that withholds records carrying biometric-looking content.

    A withheld record is rewritten in place (message, arguments, exception and
    unknown attributes removed) so no handler sees the original content, and
    it is still emitted as a WARNING notice so the offending call gets fixed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.withheld = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _GUARDED_ATTR, False):
            return True
        reason = _record_problem(record)
        if reason is not None:
            self.withheld += 1
            for name in list(record.__dict__.keys() - _STANDARD_ATTRS):
                del record.__dict__[name]
            record.msg = "log record withheld (%s:%d, logger %s): %s"
            record.args = (record.filename, record.lineno, record.name, reason)
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
            record.levelno = max(record.levelno, logging.WARNING)
            record.levelname = logging.getLevelName(record.levelno)
        setattr(record, _GUARDED_ATTR, True)
        return True


def record_fields(record: logging.LogRecord) -> dict[str, str]:
    """The allow-listed structured fields of a record, as journald field → text."""
    return {
        journal_name: str(record.__dict__[name])
        for name, journal_name in ALLOWED_FIELDS.items()
        if name in record.__dict__
    }


class StderrFormatter(logging.Formatter):
    """``time LEVEL logger: message [field=value …]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = record_fields(record)
        if fields:
            text += " [" + " ".join(f"{k.lower()}={v}" for k, v in fields.items()) + "]"
        return text


class JournalSender(Protocol):
    def __call__(self, message: str, fields: Mapping[str, str]) -> None: ...


def native_journal_sender(path: Path = JOURNAL_SOCKET) -> JournalSender:
    """Send entries with journald's native datagram protocol (used without systemd-python)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    address = str(path)

    def send(message: str, fields: Mapping[str, str]) -> None:
        parts = []
        for key, value in {"MESSAGE": message, **fields}.items():
            data = value.encode("utf-8", "replace")
            if b"\n" in data:
                parts.append(key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
            else:
                parts.append(key.encode() + b"=" + data + b"\n")
        sock.sendto(b"".join(parts), address)

    return send


def systemd_python_sender() -> JournalSender | None:
    """``systemd.journal.send`` when systemd-python is installed, else None."""
    try:
        journal = importlib.import_module("systemd.journal")
    except ImportError:
        return None

    def send(message: str, fields: Mapping[str, str]) -> None:
        journal.send(message, **fields)

    return send


class JournaldHandler(logging.Handler):
    """Writes records to journald with PRIORITY, code location and allow-listed fields.

    If journald refuses an entry (socket missing, journald restarting) the
    record goes to ``fallback`` instead and a warning is printed once there.
    """

    def __init__(self, sender: JournalSender, fallback: logging.Handler | None = None) -> None:
        super().__init__()
        self._send = sender
        self._fallback = fallback
        self._failed = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            fields = {
                "PRIORITY": str(_PRIORITY.get(record.levelno, 6)),
                "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
                "LOGGER": record.name,
                "THREAD_NAME": record.threadName or "",
                "CODE_FILE": record.pathname,
                "CODE_LINE": str(record.lineno),
                "CODE_FUNC": record.funcName,
                **record_fields(record),
            }
            self._send(message, fields)
        except Exception as exc:
            if self._fallback is None:
                return
            if not self._failed:
                self._failed = True
                note = logging.LogRecord(
                    "agent.logging", logging.WARNING, __file__, 0,
                    "journald unavailable (%s); logging to stderr", (exc.__class__.__name__,),
                    None,
                )  # fmt: skip
                self._fallback.handle(note)
            self._fallback.handle(record)


def running_under_journald(env: Mapping[str, str] | None = None) -> bool:
    """True when systemd connected our stderr to the journal (``$JOURNAL_STREAM``)."""
    env = os.environ if env is None else env
    return bool(env.get("JOURNAL_STREAM")) and JOURNAL_SOCKET.exists()


def build_handler(
    mode: str = "auto",
    *,
    stream: Any = None,
    journal_socket: Path | None = None,
    prefer_systemd_python: bool = True,
) -> logging.Handler:
    """The handler for ``logging.journald`` = auto | on | off, with the guard installed.

    ``journal_socket`` forces the native protocol to that socket (tests, or
    hosts where systemd-python is missing).
    """
    plain = logging.StreamHandler(stream if stream is not None else sys.stderr)
    plain.setFormatter(StderrFormatter())
    plain.addFilter(BiometricGuard())
    use_journal = mode == "on" or (mode == "auto" and running_under_journald())
    if not use_journal:
        return plain
    sender: JournalSender | None = None
    if journal_socket is None and prefer_systemd_python:
        sender = systemd_python_sender()
    if sender is None:
        try:
            sender = native_journal_sender(journal_socket or JOURNAL_SOCKET)
        except OSError:
            return plain
    handler = JournaldHandler(sender, fallback=plain)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(BiometricGuard())
    return handler


def configure_logging(
    level: str = "info", journald: str = "auto", *, stream: Any = None
) -> logging.Handler:
    """Replace the root logger's handlers with one guarded handler; return it.

    ``level`` and ``journald`` are the config's ``logging.level`` and
    ``logging.journald`` (see :func:`configure_from_config`).
    """
    handler = build_handler(journald, stream=stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    return handler


def configure_from_config(
    section: LoggingSection, level_override: str | None = None
) -> logging.Handler:
    """Logging for ``lfr-agent run``: the config's ``[logging]`` section, ``--log-level`` wins."""
    return configure_logging(level_override or section.level, section.journald)
