"""One soak sample taken from real processes and real files (no rig needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
