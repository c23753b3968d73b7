"""The fleet simulator's parts: the ladder of fleet sizes, the plan a camera process
reads, resource sampling of real processes, and the report (table, JSON, PNG). The
simulator itself runs in CI as ``make fleet-sim N=50`` and fails on any alert lost,
duplicated or phantom."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hil.fleet.fleet_plan import CameraSpec, GroupPlan
from hil.fleet.process_sampler import ProcessSampler, descendants
from hil.fleet.scaling_report import StepResult, read_json, save_png, table, write_json
from hil.fleet.scaling_report import main as scaling_main
from hil.fleet_sim import HUB_WORKER_COMMAND, ladder, percentile


def test_the_ladder_runs_the_smaller_fleets_first() -> None:
    assert ladder(1000) == [10, 100, 1000]
    assert ladder(50) == [10, 50]
    assert ladder(10) == [10]
    assert ladder(3) == [3]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (
        50.0,
        95.0,
        99.0,
    )
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_the_hub_worker_command_is_one_template() -> None:
    fields = {
        "lfr_hub",
        "db",
        "host",
        "port",
        "pki_dir",
        "identity",
        "alert_key",
        "group",
    }
    rendered = HUB_WORKER_COMMAND.format(**{f: f"<{f}>" for f in fields})
    assert "<db>" in rendered and "<group>" in rendered and "{" not in rendered
    # Each worker connects as its own hub identity (the broker's client id).
    assert "--identity <identity>" in rendered


def test_a_group_plan_survives_the_trip_to_its_process(tmp_path: Path) -> None:
    cam = CameraSpec("sim-0001", "127.0.0.1", 8883, "c.pem", "k.pem", "s.pem", str(tmp_path))
    plan = GroupPlan(
        name="group-0",
        cameras=[cam],
        ca_file="ca.pem",
        hub_alert_public_key_file="hub.pem",
        alerts_per_camera=3,
        send_from=1.0,
        send_until=2.0,
        status_interval_s=30.0,
        resend_after_s=60.0,
        events_file="e.jsonl",
        stats_file="s.json",
    )
    plan.write(tmp_path / "plan.json")
    assert GroupPlan.read(tmp_path / "plan.json") == plan


def test_the_sampler_counts_a_child_s_cpu_and_memory() -> None:
    # The child burns 0.6 s of its own CPU time, however long that takes on a busy machine.
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import time\nb = bytearray(40 * 2**20)\nwhile time.process_time() < 0.6: pass\n"
         "time.sleep(0.5)"]
    )  # fmt: skip
    sampler = ProcessSampler(interval_s=0.1)
    sampler.watch("child", lambda: descendants(child.pid))
    try:
        sampler.start()
        child.wait(timeout=60)
    finally:
        sampler.stop()
    usage = sampler.usage("child")
    assert 0.3 <= usage.cpu_s <= 5.0
    assert usage.peak_pss > 30 * 2**20  # the 40 MiB it held


def step(cameras: int, latency: float) -> StepResult:
    return StepResult(
        cameras=cameras, hub_workers=2, seconds=150.0, sent=10 * cameras, stored=10 * cameras,
        duplicated=0, lost=0, phantom=0, redeliveries=3, latency_p50_s=latency / 10,
        latency_p95_s=latency / 2, latency_p99_s=latency, latency_max_s=2 * latency,
        hub_cpu_core=0.01 * cameras / 10, hub_peak_mb=180.0, postgres_cpu_core=0.02,
        postgres_peak_mb=60.0, broker_cpu_core=0.01, broker_peak_mb=9.0, cameras_cpu_core=0.2,
        feed_p50_ms=1.0, feed_p95_ms=4.0,
    )  # fmt: skip


def test_the_report_holds_every_fleet_size(tmp_path: Path) -> None:
    results = [step(10, 1.0), step(100, 2.0), step(1000, 5.0)]
    text = table(results)
    assert text.count("\n") == 2 + 3
    assert "| 1000 | 10000 | 10000 | 0 | 0 |" in text
    assert results[2].hub_cpu_per_100 == 10.0  # 1.0 core for 1000 cameras: 10 % per 100
    write_json(tmp_path / "r.json", results, {"command": "x"})
    steps = json.loads((tmp_path / "r.json").read_text())["steps"]
    assert [s["cameras"] for s in steps] == [10, 100, 1000]
    save_png(tmp_path / "s.png", results)
    img = cv2.imdecode(np.frombuffer((tmp_path / "s.png").read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] > img.shape[0] > 300


def test_reports_of_separate_runs_merge_into_one_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_json(tmp_path / "a.json", [step(1000, 5.0)], {"command": "a"})
    write_json(tmp_path / "b.json", [step(10, 1.0), step(100, 2.0)], {"command": "b"})
    assert read_json(tmp_path / "a.json") == [step(1000, 5.0)]
    assert (
        scaling_main([str(tmp_path / "m.png"), str(tmp_path / "a.json"), str(tmp_path / "b.json")])
        == 0
    )
    rows = [line for line in capsys.readouterr().out.splitlines() if line[:3] in ("| 1", "| 2")]
    assert [r.split("|")[1].strip() for r in rows] == ["10", "100", "1000"]
    assert (tmp_path / "m.png").stat().st_size > 1000
