"""Telling systemd how the agent is doing: READY, WATCHDOG, STATUS, STOPPING.

Uses systemd-python's ``systemd.daemon.notify`` when it is installed and a
small built-in sender otherwise (one datagram to ``$NOTIFY_SOCKET``, a path or
an abstract ``@name`` socket). Outside systemd ``$NOTIFY_SOCKET`` is unset and
every call is a cheap no-op. A broken socket (nobody listening, a path that
vanished) never raises: the first failure is logged once and the call returns
False, because a status message is never worth crashing the agent for.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from collections.abc import Callable, Mapping

from agent.runtime.journal_logging import WarnOnce

log = logging.getLogger("agent.runtime.sd_notify")

_MAX_STATUS_CHARS = 512


def _builtin_sender(address: str) -> Callable[[str], None]:
    if address.startswith("@"):
        target = "\0" + address[1:]
    elif address.startswith("/"):
        target = address
    else:
        raise ValueError(f"unsupported NOTIFY_SOCKET address {address!r}")

    def send(message: str) -> None:
        # Non-blocking: if the manager's queue is full the message is dropped (and counted),
        # the calling thread is never held up.
        flags = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        with socket.socket(socket.AF_UNIX, flags) as sock:
            sock.sendto(message.encode("utf-8", "replace"), target)

    return send


def _systemd_python_sender(address: str) -> Callable[[str], None] | None:
    try:
        daemon = importlib.import_module("systemd.daemon")
    except ImportError:
        return None

    def send(message: str) -> None:
        # sd_notify reads $NOTIFY_SOCKET itself; pin it to the address chosen at start.
        if os.environ.get("NOTIFY_SOCKET") != address:
            os.environ["NOTIFY_SOCKET"] = address
        if not daemon.notify(message):
            raise OSError("sd_notify reported that nothing was sent")

    return send


class SystemdNotifier:
    """Sends service state to systemd; safe to call whether or not systemd is listening.

    ``socket_address`` defaults to ``$NOTIFY_SOCKET``; ``backend`` is ``"auto"``
    (systemd-python if importable), ``"systemd-python"`` or ``"builtin"``.
    """

    def __init__(
        self,
        socket_address: str | None = None,
        *,
        backend: str = "auto",
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        address = socket_address if socket_address is not None else env.get("NOTIFY_SOCKET", "")
        self.address = address
        self.backend = "none"
        self.sent = 0
        self.failed = 0
        self._warn = WarnOnce(log)
        self._send: Callable[[str], None] | None = None
        if not address:
            return
        if backend not in ("auto", "systemd-python", "builtin"):
            raise ValueError(f"unknown notify backend {backend!r}")
        if backend in ("auto", "systemd-python"):
            self._send = _systemd_python_sender(address)
            if self._send is not None:
                self.backend = "systemd-python"
        if self._send is None:
            try:
                self._send = _builtin_sender(address)
                self.backend = "builtin"
            except ValueError as exc:
                self._warn("address", "systemd notifications disabled: %s", exc)

    @property
    def enabled(self) -> bool:
        """True when a notify socket was given (the agent runs as a Type=notify service)."""
        return self._send is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one message; True if it was handed to the socket."""
        if self._send is None or not assignments:
            return False
        message = "\n".join(assignments)
        try:
            self._send(message)
        except Exception as exc:
            self.failed += 1
            self._warn(
                "send",
                "systemd notify socket %s unusable (%s: %s); continuing without it",
                self.address,
                exc.__class__.__name__,
                exc,
            )
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1: models verified, keys loaded, broker session up or store-and-forward running."""
        lines = ["READY=1"]
        if status:
            lines.append(_status_line(status))
        return self.notify(*lines)

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(_status_line(text))

    def stopping(self, status: str | None = None) -> bool:
        lines = ["STOPPING=1"]
        if status:
            lines.append(_status_line(status))
        return self.notify(*lines)


def _status_line(text: str) -> str:
    # One line only: a newline would start a new KEY=value assignment.
    flat = " ".join(text.split())
    return "STATUS=" + flat[:_MAX_STATUS_CHARS]


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, or None when systemd does not expect pings.

    ``$WATCHDOG_PID``, when set, must name this process (otherwise the
    watchdog belongs to someone else, e.g. a parent shell).
    """
    env = os.environ if env is None else env
    raw = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2_000_000
