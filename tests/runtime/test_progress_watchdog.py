"""The watchdog pings only while the pipeline makes progress."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from agent.runtime.progress_watchdog import ProgressWatchdog
from agent.runtime.sd_notify import SystemdNotifier


class ManualTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingSink:
    """Stands in for the notifier in the pure-logic tests (the socket path is tested below)."""

    def __init__(self) -> None:
        self.pings = 0

    def watchdog(self) -> bool:
        self.pings += 1
        return True


def test_pings_only_while_every_required_component_beats() -> None:
    clock, sink = ManualTime(), CountingSink()
    wd = ProgressWatchdog(sink, 10.0, {"control": 30.0}, clock=clock)
    wd.require("capture", 5.0)
    assert wd.check() and sink.pings == 1
    clock.now += 6
    wd.beat("control")
    assert wd.stalled() == ["capture"]
    assert not wd.check() and sink.pings == 1 and not wd.healthy
    wd.beat("capture")
    assert wd.check() and sink.pings == 2 and wd.healthy


def test_released_component_is_no_longer_required() -> None:
    clock, sink = ManualTime(), CountingSink()
    wd = ProgressWatchdog(sink, 10.0, {"capture": 5.0}, clock=clock)
    clock.now += 60
    assert wd.stalled() == ["capture"]
    wd.release("capture")
    assert wd.stalled() == [] and wd.check() and sink.pings == 1


def test_beats_of_unrequired_components_are_ignored() -> None:
    clock, sink = ManualTime(), CountingSink()
    wd = ProgressWatchdog(sink, 10.0, clock=clock)
    wd.beat("vision")
    assert wd.stalled() == []
    wd.require("vision", 1.0)  # a fresh requirement starts with full credit
    clock.now += 0.5
    assert wd.stalled() == []
    clock.now += 1.0
    assert wd.stalled() == ["vision"]


def test_without_systemd_watchdog_it_tracks_stalls_but_never_pings() -> None:
    clock, sink = ManualTime(), CountingSink()
    wd = ProgressWatchdog(sink, None, {"control": 1.0}, clock=clock)
    wd.start()  # no thread without an interval
    assert wd.check() and sink.pings == 0
    clock.now += 2
    assert not wd.check() and wd.stalled() == ["control"]
    wd.stop()


def test_stall_is_logged_once_and_recovery_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock, sink = ManualTime(), CountingSink()
    wd = ProgressWatchdog(sink, 10.0, {"capture": 1.0}, clock=clock)
    clock.now += 2
    for _ in range(3):
        wd.check()
    wd.beat("capture")
    wd.check()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("stalled (capture)" in m for m in messages) == 1
    assert sum("resume" in m for m in messages) == 1


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        ProgressWatchdog(CountingSink(), 0.0)
    with pytest.raises(ValueError, match="capture"):
        ProgressWatchdog(CountingSink(), 1.0, {"capture": 0})


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    folder = tempfile.mkdtemp(prefix="lfr-wd-")
    path = os.path.join(folder, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()
    shutil.rmtree(folder, ignore_errors=True)


class PingCollector:
    """Reads the notify socket continuously, as the service manager does."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pings = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.05)
        while not self._done.is_set():
            try:
                self.pings += self.sock.recv(100) == b"WATCHDOG=1"
            except TimeoutError:
                continue

    def close(self) -> None:
        self._done.set()
        self._thread.join()


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_injected_stall_stops_real_pings(notify_socket: socket.socket) -> None:
    """The real ping thread and socket; time is the test's, so a stall is a fact, not a
    race: the capture deadline passes when the test moves the clock, and "no ping during
    the stall" is checked over many counted rounds of the thread."""
    clock = ManualTime()
    notifier = SystemdNotifier(backend="builtin")
    wd = ProgressWatchdog(notifier, 0.01, {"capture": 5.0}, clock=clock)
    collector = PingCollector(notify_socket)
    wd.start()
    try:
        assert _wait_for(lambda: collector.pings >= 3), "no pings while progressing"
        clock.now += 6.0  # capture makes no progress past its deadline
        assert _wait_for(lambda: not wd.healthy), "watchdog never noticed the stall"
        at_stall, rounds_at_stall = wd.pings, wd.rounds
        assert _wait_for(lambda: wd.rounds >= rounds_at_stall + 20), "the thread stopped"
        # Every datagram sent has arrived (sendto on a local socket is synchronous).
        assert _wait_for(lambda: collector.pings == wd.pings)
        during = wd.pings - at_stall
        received_during_stall = collector.pings - at_stall
        wd.beat("capture")  # progress again
        assert _wait_for(lambda: collector.pings >= at_stall + 3), "pings never resumed"
    finally:
        wd.stop()
        collector.close()
    assert during == 0 and received_during_stall == 0
    assert wd.healthy
