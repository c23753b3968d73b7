"""sd_notify over a real datagram socket bound by the test, with both senders.

``systemd-python`` is exercised when installed (skipped otherwise); the
built-in sender always runs. A small driver uses the runtime modules the way
the daemon will: READY, progress-driven WATCHDOG, STATUS from the health
reporter, STOPPING.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.runtime.health_status import HealthReporter, HealthStatusBuilder
from agent.runtime.progress_watchdog import ProgressWatchdog
from agent.runtime.sd_notify import SystemdNotifier, watchdog_interval_s

HAVE_SYSTEMD_PYTHON = importlib.util.find_spec("systemd") is not None
BACKENDS = [
    pytest.param(
        "systemd-python",
        marks=pytest.mark.skipif(not HAVE_SYSTEMD_PYTHON, reason="systemd-python not installed"),
    ),
    "builtin",
]


class NotifyListener:
    """The service manager's end: a bound AF_UNIX datagram socket."""

    def __init__(self, path: str) -> None:
        self.address = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def receive(self, timeout: float = 10.0) -> str | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except TimeoutError:
            return None

    def drain(self) -> list[str]:
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        return out


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    # A short directory: AF_UNIX paths are limited to 107 bytes.
    folder = tempfile.mkdtemp(prefix="lfr-notify-")
    path = os.path.join(folder, "notify.sock")
    lst = NotifyListener(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield lst
    lst.sock.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_messages_arrive_in_order(listener: NotifyListener, backend: str) -> None:
    notifier = SystemdNotifier(backend=backend)
    assert notifier.backend == backend
    assert notifier.ready(status="idle")
    assert notifier.watchdog()
    assert notifier.status("active, 12.0 fps\noutbox 0")
    assert notifier.stopping()
    got = [listener.receive() for _ in range(4)]
    assert got == [
        "READY=1\nSTATUS=idle",
        "WATCHDOG=1",
        "STATUS=active, 12.0 fps outbox 0",
        "STOPPING=1",
    ]
    assert notifier.sent == 4 and notifier.failed == 0


def test_builtin_sender_reaches_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"lfr-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        notifier = SystemdNotifier(f"@{name}", backend="builtin")
        assert notifier.ready()
        assert sock.recv(100) == b"READY=1"


def test_without_notify_socket_every_call_is_a_quiet_no_op(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier()
    assert not notifier.enabled and notifier.backend == "none"
    assert not notifier.ready() and not notifier.watchdog() and not notifier.stopping()
    assert caplog.records == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_socket_without_listener_warns_once_and_never_raises(
    tmp_path: Path, backend: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = str(tmp_path / "nobody-listens.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", gone)
    notifier = SystemdNotifier(backend=backend)
    with caplog.at_level(logging.WARNING):
        results = [notifier.ready(), notifier.watchdog(), notifier.watchdog(), notifier.stopping()]
    assert results == [False] * 4
    assert notifier.failed == 4
    warnings = [r for r in caplog.records if "notify socket" in r.getMessage()]
    assert len(warnings) == 1
    assert gone in warnings[0].getMessage()


def test_unusable_address_disables_notifications(caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier("vsock:2:1234", backend="builtin")
    assert not notifier.enabled
    assert not notifier.ready()
    assert any("vsock:2:1234" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval_s(env) == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_daemon_like_driver_sends_ready_watchdog_status_stopping(
    listener: NotifyListener, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``lfr-agent run`` will do, in miniature: the order systemd must see."""
    monkeypatch.setenv("WATCHDOG_USEC", "40000")  # 40 ms → a ping every 20 ms
    notifier = SystemdNotifier(backend=backend)
    state = {"value": "starting"}
    builder = HealthStatusBuilder(
        device_id="dev-1", state_dir=tmp_path, models={}, state=lambda: state["value"]
    )
    reporter = HealthReporter(builder, 3600, publish=lambda s: None, status_line=notifier.status)
    watchdog = ProgressWatchdog.from_environment(notifier, {"control": 5.0})
    stop = threading.Event()

    def control_loop() -> None:
        while not stop.is_set():
            watchdog.beat("control")
            stop.wait(0.01)

    loop = threading.Thread(target=control_loop)
    loop.start()
    state["value"] = "idle"
    notifier.ready(status="idle")  # models verified, keys loaded, broker up
    watchdog.start()
    pings = 0
    while pings < 3:
        msg = listener.receive()
        assert msg is not None, "no WATCHDOG=1 within 10 s"
        pings += msg == "WATCHDOG=1"
    reporter.report_now()
    watchdog.stop()
    stop.set()
    loop.join()
    notifier.stopping()
    rest = listener.drain()
    kinds = [m.split("=", 1)[0] for m in rest]
    assert "STATUS" in kinds
    status = next(m for m in rest if m.startswith("STATUS="))
    assert status == "STATUS=idle"
    assert rest[-1] == "STOPPING=1"
    assert "WATCHDOG" not in kinds[kinds.index("STATUS") + 1 :]


@pytest.mark.parametrize("backend", BACKENDS)
def test_ready_is_the_first_message(listener: NotifyListener, backend: str) -> None:
    notifier = SystemdNotifier(backend=backend)
    watchdog = ProgressWatchdog(notifier, 0.01, {"control": 5.0})
    notifier.ready()
    watchdog.start()
    try:
        first = listener.receive()
        second = listener.receive()
    finally:
        watchdog.stop()
    assert first == "READY=1"
    assert second == "WATCHDOG=1"


def test_auto_falls_back_to_builtin_without_systemd_python(
    listener: NotifyListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Make "import systemd.daemon" fail as on a host without systemd-python.
    monkeypatch.setitem(__import__("sys").modules, "systemd", None)
    monkeypatch.setitem(__import__("sys").modules, "systemd.daemon", None)
    notifier = SystemdNotifier()
    assert notifier.backend == "builtin"
    assert notifier.ready()
    assert listener.receive() == "READY=1"
