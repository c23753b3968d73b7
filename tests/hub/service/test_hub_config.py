"""The hub config: the shipped example is the generated one and is valid; bad keys and
values are refused with one line naming the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from agent.config import MatchingSection
from agent.errors import ConfigError
from agent.hub.service.hub_config import load_hub_config, parse_hub_config, render_hub_example

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "hub.example.toml"


def test_shipped_example_is_the_generated_one_and_valid() -> None:
    assert EXAMPLE.read_text() == render_hub_example(), "regenerate: lfr-hub config example"
    cfg = load_hub_config(EXAMPLE)
    assert cfg.console.port == 8443 and cfg.broker.enabled


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ("[console]\nport = 0", "console.port: must be 1–65535, got 0"),
        ("[console]\nprot = 1", "console.prot: unknown key"),
        ("[consoel]", "consoel: unknown section"),
        ('[broker]\nidentity = "Main!"', "broker.identity: does not match"),
        ("[console]\nsession_idle_min = 600\nsession_max_h = 1", "must not exceed"),
        ('[logging]\nlevel = "loud"', "logging.level: must be one of"),
        ("[hold]\nrenew_every_s = 60\nlease_s = 120", "hold.lease_s: must be at least 3 ×"),
        ("[hold]\nlease_s = 5", "hold.lease_s: must be 10–86400, got 5"),
        ('[keys]\ndir = "relative/keys"', "keys.dir: does not match"),
        ('[calibration]\ncohort = "faces.npz"', "calibration.cohort: must be an array"),
        ('[calibration]\ncohort = [""]', "calibration.cohort[0]: must not be empty"),
        ('[calibration]\nscore = "best"', "calibration.score: must be one of auto, snorm"),
        ("[calibration]\nfloor = 1.5", "calibration.floor: must be 0–1, got 1.5"),
        ("[calibration]\ntop_k = 0", "calibration.top_k: must be 1–50, got 0"),
    ],
)
def test_bad_values_are_named(toml: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_hub_config(tomllib.loads(toml))
    assert problem in str(err.value)


def test_the_calibration_cohort_is_a_list_of_paths_with_the_cameras_defaults() -> None:
    cfg = parse_hub_config(tomllib.loads('[calibration]\ncohort = ["/c/a.npz", "/c/crowds"]'))
    assert cfg.calibration.cohort == [Path("/c/a.npz"), Path("/c/crowds")]
    assert (cfg.calibration.floor, cfg.calibration.top_k, cfg.calibration.score) == (
        MatchingSection().threshold_floor,
        MatchingSection().top_k,
        "auto",
    )
    assert parse_hub_config({}).calibration.cohort == []


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_hub_config(tmp_path / "nope.toml")
