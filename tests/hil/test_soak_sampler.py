"""One soak sample taken from real processes and real files (no rig needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.soak.device_status_watch import DeviceStatusWatch
from hil.soak.soak_budgets import RESOURCES
from hil.soak.soak_sampler import SoakSampler, SoakSources


def test_a_sample_holds_every_resource_and_gaps_for_what_is_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "outbox").mkdir(parents=True)
    (state / "outbox" / "00000001-ab.alert").write_bytes(b"x" * 1000)
    (state / "outbox" / ".tmp-00000002-cd.alert").write_bytes(b"x" * 10)
    (state / "audit.jsonl").write_bytes(
        b'{"event": "alert.sealed"}\n{"event": "gate.opened"}\n{"event": "alert.sealed"}\n'
    )
    daemon_log, hub_log = tmp_path / "agent.log", tmp_path / "hub.log"
    daemon_log.write_text("a\nb\n")
    hub = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    now = [100.0]
    try:
        sources = SoakSources(
            daemon_pid=os.getpid,
            hub_pid=lambda: hub.pid,
            broker_pid=lambda: None,  # the broker restarting: a gap
            daemon_log=daemon_log,
            hub_log=hub_log,
            state_dir=state,
            hub_db=tmp_path / "alerts.db",
            status=DeviceStatusWatch("lfr-hil-01"),
            alerts_stored=lambda: 7,
            alerts_adjudicated=lambda: 3,
        )
        journal = tmp_path / "samples.jsonl"
        sampler = SoakSampler(sources, clock=lambda: now[0], journal=journal)
        first = sampler.sample()
        now[0] = 110.0
        daemon_log.write_text("a\nb\nc\nd\n")
        second = sampler.sample()
    finally:
        hub.kill()
        hub.wait()
    for r in RESOURCES:
        assert r.name in second, r.name
    assert second["broker.rss_mb"] is None
    assert second["daemon.rss_mb"] is not None and second["daemon.rss_mb"] > 10
    assert second["hub.threads"] is not None and second["hub.threads"] >= 1
    assert first["daemon.cpu_pct"] is None and second["daemon.cpu_pct"] is not None
    assert second["daemon.log_lines_per_min"] == 12.0  # 2 new lines in 10 s
    assert second["device.outbox_files"] == 2.0  # a half-written .tmp- entry counts too
    assert second["device.outbox_mb"] == 1010 / 1024 / 1024
    assert second["alerts.sealed"] == 2.0
    assert second["alerts.stored"] == 7.0 and second["alerts.adjudicated"] == 3.0
    assert second["device.fps"] is None  # no status heard
    lines = journal.read_text().splitlines()
    assert [json.loads(line)["t"] for line in lines] == [0.0, 10.0]
    assert sampler.series.points["alerts.stored"] == [(0.0, 7.0), (10.0, 7.0)]


def _sources(tmp_path: Path, hub_pid: int) -> SoakSources:
    state = tmp_path / "state"
    (state / "outbox").mkdir(parents=True, exist_ok=True)
    return SoakSources(
        daemon_pid=os.getpid,
        hub_pid=lambda: hub_pid,
        broker_pid=lambda: None,
        daemon_log=tmp_path / "agent.log",
        hub_log=tmp_path / "hub.log",
        state_dir=state,
        hub_db=tmp_path / "alerts.db",
        status=DeviceStatusWatch("lfr-hil-01"),
        alerts_stored=lambda: 0,
        alerts_adjudicated=lambda: 0,
    )


def test_memory_read_more_often_leaves_the_full_sample_without_it(tmp_path: Path) -> None:
    hub = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    now = [100.0]
    try:
        journal = tmp_path / "samples.jsonl"
        sampler = SoakSampler(
            _sources(tmp_path, hub.pid),
            clock=lambda: now[0],
            journal=journal,
            memory_interval_s=1.0,
        )
        full = sampler.sample()
        memory = [sampler.sample_memory() for _ in range(3)]
    finally:
        hub.kill()
        hub.wait()
    # Memory comes from its own samples only: one time, one value, never two per instant.
    assert "daemon.rss_mb" not in full and "hub.anon_mb" not in full
    assert full["daemon.pss_mb"] is not None and full["hub.threads"] is not None
    assert set(memory[0]) == {"daemon.rss_mb", "daemon.anon_mb", "hub.rss_mb", "hub.anon_mb"}
    assert all(v is not None and v > 1 for v in memory[0].values())
    assert len(sampler.series.points["daemon.rss_mb"]) == 3
    assert len(sampler.series.points["daemon.pss_mb"]) == 1
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    assert len(rows) == 4 and "daemon.anon_mb" in rows[-1]


def test_the_sampling_thread_reads_memory_at_its_own_interval(tmp_path: Path) -> None:
    sampler = SoakSampler(_sources(tmp_path, os.getpid()), interval_s=1.0, memory_interval_s=0.1)
    sampler.start()
    time.sleep(2.5)
    sampler.stop()
    memory = sampler.series.points["daemon.anon_mb"]
    full = sampler.series.points["daemon.threads"]
    assert not sampler.errors
    # Ten memory samples to each full one (a loaded machine may run a few late).
    assert len(full) >= 2 and len(memory) >= 4 * len(full), (len(memory), len(full))


def test_a_memory_interval_not_below_the_sample_interval_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="memory interval 10 s"):
        SoakSampler(_sources(tmp_path, os.getpid()), interval_s=10.0, memory_interval_s=10.0)
