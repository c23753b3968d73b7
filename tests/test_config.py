"""Config validation: every error path names the key and the problem in one line."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agent.config import DEFAULT_CONFIG_PATH, SECTIONS, load_config, parse_config, render_example
from agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "configs" / "agent.example.toml"


def minimal(**sections: dict[str, object]) -> dict[str, object]:
    raw: dict[str, object] = {"device": {"id": "lfr-test-01"}}
    raw.update(sections)
    return raw


def problems_of(raw: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value.problems


def test_example_file_is_the_generated_one_and_valid() -> None:
    assert EXAMPLE.read_text() == render_example(), "regenerate: lfr-agent config example"
    cfg = load_config(EXAMPLE)
    assert cfg.device.id == "lfr-demo-01"
    assert cfg.camera.fps == 30


def test_example_documents_every_key() -> None:
    raw = tomllib.loads(render_example())
    import dataclasses

    for name, cls in SECTIONS.items():
        assert set(raw[name]) == {f.name for f in dataclasses.fields(cls)}


def test_defaults_apply_when_sections_are_missing() -> None:
    cfg = parse_config(minimal())
    assert cfg.outbox.retention_days == 31
    assert cfg.paths.state_dir == Path("/var/lib/lfr-agent")
    assert Path("/etc/lfr-agent/agent.toml") == DEFAULT_CONFIG_PATH


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (minimal(camera={"fps": 0}), "camera.fps: must be 1–120, got 0"),
        (minimal(camera={"fps": 121}), "camera.fps: must be 1–120, got 121"),
        (minimal(camera={"fps": "30"}), "camera.fps: must be an integer, got string '30'"),
        (minimal(camera={"fps": 30.5}), "camera.fps: must be an integer, got number 30.5"),
        (minimal(camera={"fps": True}), "camera.fps: must be an integer, got boolean true"),
        (minimal(camera={"fsp": 30}), "camera.fsp: unknown key"),
        (minimal(camara={"fps": 30}), "camara: unknown section"),
        (minimal(camera=5), "camera: must be a table, got number 5"),
        (
            minimal(camera={"source": "webcam"}),
            "camera.source: must be one of picamera2, opencv, replay, got 'webcam'",
        ),
        (minimal(camera={"loop": "yes"}), "camera.loop: must be true or false, got string 'yes'"),
        (
            minimal(camera={"open_timeout_s": float("nan")}),
            "camera.open_timeout_s: must be a finite number, got nan",
        ),
        (
            minimal(camera={"source": "replay"}),
            "camera.device: required when camera.source is replay",
        ),
        (
            minimal(camera={"source": "picamera2", "device": "/dev/video0"}),
            "camera.device: picamera2 takes a camera number (0, 1, …; empty for 0), "
            "got '/dev/video0'",
        ),
        (
            # str.isdigit() accepts a superscript two, which int() then refuses.
            minimal(camera={"source": "picamera2", "device": "²"}),
            "camera.device: picamera2 takes a camera number (0, 1, …; empty for 0), got '²'",
        ),
        (
            minimal(detector={"input_long_side": 650}),
            "detector.input_long_side: must be a multiple of 32, got 650",
        ),
        (minimal(detector={"roi": [0.1, 0.1]}), "detector.roi: must have 0 or 4 items, got 2"),
        (minimal(detector={"roi": [0.1, 0.1, 1.5, 0.9]}), "detector.roi[2]: must be 0–1, got 1.5"),
        (
            minimal(detector={"roi": [0.5, 0.1, 0.2, 0.9]}),
            "detector.roi: x1 must exceed x0 and y1 must exceed y0",
        ),
        (minimal(detector={"roi": "all"}), "detector.roi: must be an array, got string 'all'"),
        (minimal(paths={"state_dir": ""}), "paths.state_dir: must not be empty"),
        (minimal(paths={"state_dir": 3}), "paths.state_dir: must be a string, got number 3"),
        (
            minimal(models={"detector": "/x.onnx"}),
            "models.detector_sha256: required when models.detector is set",
        ),
        (
            minimal(models={"embedder_sha256": "a" * 64}),
            "models.embedder: required when models.embedder_sha256 is set",
        ),
        (minimal(models={"detector_sha256": "xyz"}), "models.detector_sha256: does not match"),
        (
            minimal(mqtt={"reconnect_min_s": 10.0, "reconnect_max_s": 5.0}),
            "mqtt.reconnect_min_s: must not exceed mqtt.reconnect_max_s",
        ),
        ({"device": {}}, "device.id: required, not set"),
        ({}, "device.id: required, not set"),
        ({"device": {"id": "Bad Id!"}}, "device.id: does not match"),
    ],
)
def test_each_error_names_key_and_problem(raw: dict[str, object], expected: str) -> None:
    problems = problems_of(raw)
    assert any(p.startswith(expected) for p in problems), problems
    assert all("\n" not in p for p in problems)


def test_all_problems_are_reported_at_once() -> None:
    problems = problems_of(minimal(camera={"fps": 0, "width": 10, "bogus": 1}))
    assert len(problems) == 3


def test_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera\nfps = 1\n")
    with pytest.raises(ConfigError, match=r"invalid TOML"):
        load_config(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)
    # A path through a regular file fails even for root (ENOTDIR).
    with pytest.raises(ConfigError, match=r"bin.toml/agent.toml: cannot read \(Not a directory\)"):
        load_config(binary / "agent.toml")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.agent_main", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_config_check_cli(tmp_path: Path) -> None:
    ok = run_cli("config", "check", str(EXAMPLE))
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "agent.toml"
    bad.write_text('[device]\nid = "lfr-x"\n[camera]\nfps = "fast"\nzoom = 2\n')
    res = run_cli("config", "check", str(bad))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert any("camera.fps: must be an integer" in line for line in lines)
    assert any("camera.zoom: unknown key" in line for line in lines)
