"""The retained status payload: complete, operational only, and never an exception."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent import __version__
from agent.config import parse_config
from agent.runtime.health_status import (
    HealthReporter,
    HealthStatus,
    HealthStatusBuilder,
    builder_from_config,
    read_cpu_temp_c,
    reporter_from_config,
)
from agent.trust.system_clock import ClockSync

PAYLOAD_KEYS = {
    "schema",
    "device_id",
    "state",
    "version",
    "time",
    "uptime_s",
    "models",
    "fps",
    "dropped_frames",
    "outbox_depth",
    "disk_free_bytes",
    "disk_free_fraction",
    "cpu_temp_c",
    "clock_sync",
    "alarms",
}


@dataclass(frozen=True)
class Model:
    sha256: str
    model_id: str


MODELS = {
    "detector": Model("a" * 64, "yunet-fp32@aaaaaaaaaaaa"),
    "embedder": Model("b" * 64, "sface-fp32@bbbbbbbbbbbb"),
}


def make_zone(root: Path, n: int, kind: str, milli: str) -> None:
    zone = root / f"thermal_zone{n}"
    zone.mkdir(parents=True)
    (zone / "type").write_text(kind + "\n")
    (zone / "temp").write_text(milli + "\n")


def builder(tmp_path: Path, **kw: object) -> HealthStatusBuilder:
    args: dict[str, object] = {
        "device_id": "lfr-demo-01",
        "state_dir": tmp_path,
        "models": MODELS,
        "state": lambda: "active",
        "fps": lambda: 14.937,
        "dropped_frames": lambda: 3,
        "outbox_depth": lambda: 2,
        "clock_sync": lambda: ClockSync.SYNCHRONISED,
        "thermal_root": tmp_path / "thermal",
        "wall": lambda: 1_800_000_000.0,
    }
    args.update(kw)
    return HealthStatusBuilder(**args)  # type: ignore[arg-type]


def test_payload_has_every_figure_and_nothing_else(tmp_path: Path) -> None:
    make_zone(tmp_path / "thermal", 0, "cpu-thermal", "52312")
    status = builder(tmp_path).build()
    payload = json.loads(status.to_json())
    assert set(payload) == PAYLOAD_KEYS
    assert payload["state"] == "active"
    assert payload["version"] == __version__
    assert payload["time"] == "2027-01-15T08:00:00+00:00"
    assert payload["models"]["detector"] == {
        "model_id": "yunet-fp32@aaaaaaaaaaaa",
        "sha256": "a" * 64,
    }
    assert payload["fps"] == 14.94
    assert payload["dropped_frames"] == 3 and payload["outbox_depth"] == 2
    assert payload["disk_free_bytes"] > 0 and 0 < payload["disk_free_fraction"] <= 1
    assert payload["cpu_temp_c"] == 52.3
    assert payload["clock_sync"] == "synchronised"
    assert payload["alarms"] == []
    assert payload["uptime_s"] >= 0


def test_payload_carries_no_biometric_content(tmp_path: Path) -> None:
    payload = json.loads(builder(tmp_path).build().to_json())

    def keys(value: object) -> list[str]:
        if isinstance(value, dict):
            return [k for k in value] + [k for v in value.values() for k in keys(v)]
        return []

    for key in keys(payload):
        for word in ("face", "score", "embedding", "crop", "similarity", "watchlist", "track"):
            assert word not in key.lower()

    def scalars_only(value: object) -> bool:
        if isinstance(value, dict):
            return all(scalars_only(v) for v in value.values())
        if isinstance(value, list):
            return all(isinstance(v, str) for v in value)  # only alarm names
        return value is None or isinstance(value, (str, int, float, bool))

    assert scalars_only(payload)


def test_cpu_zone_is_preferred_over_hotter_other_zones(tmp_path: Path) -> None:
    make_zone(tmp_path, 0, "gpu-thermal", "71000")
    make_zone(tmp_path, 1, "cpu-thermal", "48500")
    assert read_cpu_temp_c(tmp_path) == 48.5


def test_unlabelled_zones_report_the_hottest_and_nonsense_is_ignored(tmp_path: Path) -> None:
    make_zone(tmp_path, 0, "acpitz", "40000")
    make_zone(tmp_path, 1, "iwlwifi_1", "45000")
    make_zone(tmp_path, 2, "broken", "-273000")
    make_zone(tmp_path, 3, "garbage", "warm")
    assert read_cpu_temp_c(tmp_path) == 45.0


def test_no_thermal_zones_means_no_temperature(tmp_path: Path) -> None:
    assert read_cpu_temp_c(tmp_path) is None
    assert builder(tmp_path).build().cpu_temp_c is None


def test_unreadable_sources_become_null_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "thermal" / "thermal_zone0" / "temp").mkdir(parents=True)  # read → EISDIR

    def broken() -> int:
        raise RuntimeError("outbox closed")

    b = builder(
        tmp_path,
        state=lambda: 1 / 0,
        outbox_depth=broken,
        fps=lambda: float("nan"),
        state_dir=tmp_path / "missing",
    )
    with caplog.at_level(logging.WARNING):
        first, second = b.build(), b.build()
    for status in (first, second):
        assert status.state == "unknown"
        assert status.outbox_depth is None and status.fps is None
        assert status.cpu_temp_c is None and status.disk_free_bytes is None
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("outbox depth" in w for w in warnings) == 1
    assert sum("CPU temperature" in w for w in warnings) == 1
    assert sum("free disk" in w for w in warnings) == 1


def test_alarms_for_low_disk_and_hot_cpu(tmp_path: Path) -> None:
    make_zone(tmp_path / "thermal", 0, "cpu-thermal", "83000")
    status = builder(
        tmp_path,
        disk_free_alarm_bytes=2**62,
        cpu_temp_alarm_c=80.0,
        extra_alarms=lambda: ["outbox_near_full"],
    ).build()
    assert status.alarms == ("cpu_hot", "disk_low", "outbox_near_full")
    assert "alarms: cpu_hot,disk_low,outbox_near_full" in status.summary()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (ClockSync.UNSYNCHRONISED, "unsynchronised"),
        (ClockSync.UNKNOWN, "unknown"),
        (True, "synchronised"),
        (False, "unsynchronised"),
        (None, "unknown"),
    ],
)
def test_clock_sync_text(tmp_path: Path, value: object, text: str) -> None:
    assert builder(tmp_path, clock_sync=lambda: value).build().clock_sync == text


def test_summary_for_systemd_status(tmp_path: Path) -> None:
    assert builder(tmp_path).build().summary() == "active, 14.9 fps, outbox 2, dropped 3"


def test_config_drives_device_state_dir_alarms_and_interval(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "device": {"id": "lfr-demo-01"},
            "paths": {"state_dir": str(tmp_path)},
            "health": {"status_interval_s": 5, "disk_free_alarm_mb": 1, "cpu_temp_alarm_c": 70},
        }
    )
    b = builder_from_config(cfg, models=MODELS, state=lambda: "idle")
    status = b.build()
    assert status.device_id == "lfr-demo-01" and status.state == "idle"
    assert "disk_low" not in status.alarms
    reporter = reporter_from_config(cfg, b, publish=lambda s: None)
    assert reporter.interval_s == 5.0


def test_reporter_survives_failing_publisher_and_status_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines: list[str] = []

    def publish(status: HealthStatus) -> None:
        raise ConnectionError("broker down")

    reporter = HealthReporter(builder(tmp_path), 3600, publish, lines.append)
    first = reporter.report_now()
    reporter.report_now()
    assert first is not None and reporter.last is not None
    assert lines == [first.summary()] * 2
    assert sum("not published" in r.getMessage() for r in caplog.records) == 1


def test_reporter_thread_publishes_and_stops(tmp_path: Path) -> None:
    published: list[HealthStatus] = []
    reporter = HealthReporter(builder(tmp_path), 3600, published.append)
    reporter.start()
    reporter.poke()
    reporter.stop()
    assert published and all(isinstance(s, HealthStatus) for s in published)
