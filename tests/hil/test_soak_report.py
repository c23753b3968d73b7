"""The soak's report, files figures, budget tables and the hub command template."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from agent.errors import UsageError
from hil.soak.device_status_watch import DeviceStatusWatch
from hil.soak.file_figures import FolderSize, GrowingFile, LineRate, folder_size
from hil.soak.growth_verdict import FAIL, Point
from hil.soak.hub_process import HUB_COMMAND, hub_command_line
from hil.soak.soak_budgets import FULL, RESOURCES, SHORT, table_for
from hil.soak.soak_report import judge_all, write_report

RUN_S = 600.0


def flat_run(run_s: float = RUN_S) -> dict[str, list[Point]]:
    """Every resource flat over the run (alerts and frames counting up, as they do)."""
    pts: dict[str, list[Point]] = {}
    for r in RESOURCES:
        counting = r.name in ("alerts.stored", "alerts.sealed", "device.frames")
        pts[r.name] = [(t, float(t) if counting else 50.0) for t in range(0, int(run_s) + 1, 10)]
    return pts


def test_a_flat_run_passes_and_one_leak_fails_it() -> None:
    pts = flat_run()
    assert judge_all(pts, SHORT, RUN_S).passed
    pts["daemon.fds"] = [(t, 40.0 + t / 10.0) for t, _ in pts["daemon.fds"]]
    verdict = judge_all(pts, SHORT, RUN_S)
    assert not verdict.passed
    assert [g.resource for g in verdict.growth if g.verdict == FAIL] == ["daemon.fds"]


def test_a_failed_check_fails_the_run() -> None:
    verdict = judge_all(flat_run(), SHORT, RUN_S, [("network cut", False, "not drained")])
    assert not verdict.passed


def test_a_resource_missing_from_the_samples_fails() -> None:
    pts = flat_run()
    del pts["hub.rss_mb"]
    assert not judge_all(pts, SHORT, RUN_S).passed


def test_the_report_files(tmp_path: Path) -> None:
    pts = flat_run()
    pts["hub.threads"] = [(t, 5.0 + t / 30.0) for t, _ in pts["hub.threads"]]
    verdict = judge_all(pts, SHORT, RUN_S, [("broker restart", True, "next alert 3 s later")])
    paths = write_report(tmp_path, verdict, pts, [(90.0, "fault: broker restart")], {"host": "x"})
    assert [p.name for p in paths] == ["soak.json", "soak.md", "soak.png"]
    doc = json.loads((tmp_path / "soak.json").read_text())
    assert doc["verdict"] == "fail"
    threads = next(r for r in doc["resources"] if r["resource"] == "hub.threads")
    assert threads["verdict"] == "fail" and threads["slope_per_h"] == pytest.approx(120.0)
    md = (tmp_path / "soak.md").read_text()
    assert "| hub.threads (threads) | FAIL |" in md
    assert "| broker restart | pass |" in md
    img = cv2.imread(str(tmp_path / "soak.png"))
    assert img is not None and img.shape[0] > 1000 and img.shape[1] > 1000


def test_the_short_table_is_wider_than_the_full_one() -> None:
    for r in RESOURCES:
        if r.full.kind != "info":
            assert r.short.kind == r.full.kind
            assert r.short.limit >= r.full.limit, r.name
    assert table_for(1.0) == FULL
    assert table_for(10 / 60) == SHORT
    assert table_for(10 / 60, FULL) == FULL


def test_hub_command_template() -> None:
    values = {
        "lfr_hub": "/opt/lfr-hub",
        "db": "/d b/alerts.db",
        "alert_key": "/k",
        "hub_keys": "/h",
        "broker": "10.0.0.1:8883",
        "pki_dir": "/p",
        "identity": "soak-hub",
        "work": "/w",
    }
    words = hub_command_line(HUB_COMMAND, values)
    assert words[:3] == ["/opt/lfr-hub", "alerts", "watch"]
    assert "/d b/alerts.db" in words  # a path with a space stays one word
    with pytest.raises(UsageError, match=r"unknown field \{nope\}"):
        hub_command_line("{lfr_hub} serve --x {nope}", values)
    with pytest.raises(UsageError, match="empty"):
        hub_command_line("  ", values)


def test_growing_file_reads_only_new_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    g = GrowingFile(path)
    assert g.new_lines() == []
    path.write_bytes(b"a\nb\npart")
    assert g.new_lines() == [b"a", b"b"]
    with path.open("ab") as f:
        f.write(b"ial\nc\n")
    assert g.new_lines() == [b"partial", b"c"]
    path.write_bytes(b"new\n")  # replaced (rotated) by a shorter file
    assert g.new_lines() == [b"new"]


def test_line_rate_per_minute(tmp_path: Path) -> None:
    path = tmp_path / "hub.log"
    path.write_bytes(b"x\n" * 3)
    rate = LineRate(path)
    assert rate.per_minute(100.0) is None
    path.write_bytes(b"x\n" * 8)
    assert rate.per_minute(130.0) == pytest.approx(10.0)
    assert rate.total == 8


def test_folder_size_counts_matching_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.alert").write_bytes(b"12345")
    (tmp_path / "sub" / "b.alert").write_bytes(b"123")
    (tmp_path / ".tmp-c").write_bytes(b"1")
    assert folder_size(tmp_path, "*.alert") == FolderSize(2, 8)
    assert folder_size(tmp_path).files == 3
    assert folder_size(tmp_path / "none").files == 0


def test_status_watch_integrates_frames_and_ignores_bad_messages() -> None:
    now = [0.0]
    w = DeviceStatusWatch("lfr-hil-01", clock=lambda: now[0])

    def status(fps: float, dropped: int) -> bytes:
        return json.dumps(
            {
                "schema": 1,
                "device_id": "lfr-hil-01",
                "state": "active",
                "version": "0.1.0",
                "time": "2026-12-04T05:00:00Z",
                "uptime_s": 5,
                "models": {},
                "fps": fps,
                "dropped_frames": dropped,
                "outbox_depth": 0,
                "disk_free_bytes": 1,
                "disk_free_fraction": 0.5,
                "cpu_temp_c": None,
                "clock_sync": "unknown",
                "alarms": [],
            }
        ).encode()

    w.on_message("t", status(10.0, 1))
    now[0] = 2.0
    w.on_message("t", status(8.0, 3))
    w.on_message("t", b"{not json")
    f = w.figures()
    assert f.frames == pytest.approx(20.0)
    assert f.fps == 8.0 and f.dropped_frames == 3 and f.state == "active"
    assert w.bad_messages == 1
    w.on_message("t", b"offline")  # the daemon stopped: its counter starts again
    now[0] = 4.0
    w.on_message("t", status(10.0, 2))
    assert w.figures().dropped_frames == 5
    now[0] = 100.0
    assert w.figures().fps is None  # stale: nothing heard for too long
