"""lfr-hub calibrate and lfr-hub activate --target-fpir, then the device's own check of the
activation (lfr-agent activation verify): real keys, a real sealed watchlist with the hub
copy, a cohort of embeddings in an .npz."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hub.calibration.calibration_world import DEVICE, MODEL_ID, cohort, seal
from support.operator_passphrase import PASSPHRASE

from agent.cli.agent_main import main as agent_main
from agent.cli.hub_main import main as hub_main
from agent.hub.keys.operator_keys import HubKeyStore
from agent.trust.device_keys import generate_device_keys


@pytest.fixture
def world(tmp_path: Path, operator_passphrase: str) -> dict[str, Path]:
    hub_dir, keys, state = tmp_path / "hub", tmp_path / "keys", tmp_path / "state"
    assert hub_main(["keys", "init", "--dir", str(hub_dir), "--operator", "sup1"]) == 0
    assert hub_main(["keys", "export", "--hub-dir", str(hub_dir), "--out", str(keys)]) == 0
    generate_device_keys(keys)
    hub = HubKeyStore.open(hub_dir)
    watchlist = seal(hub, tmp_path / "dep-cal.lfrwl", 200)
    np.savez(tmp_path / "cohort.npz", embeddings=cohort(1200))
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[device]\nid = "{DEVICE}"\n[paths]\nkeys_dir = "{keys}"\nstate_dir = "{state}"\n'
        "[activation]\nrequire_clock_sync = false\n"
    )
    return {"hub": hub_dir, "watchlist": watchlist, "cohort": tmp_path / "cohort.npz",
            "cfg": cfg, "tmp": tmp_path}  # fmt: skip


def _calibrate(w: dict[str, Path], *extra: str) -> int:
    return hub_main(["calibrate", "--hub-dir", str(w["hub"]), "--watchlist", str(w["watchlist"]),
                     "--cohort", str(w["cohort"]), *extra])  # fmt: skip


def _activate(w: dict[str, Path], *how: str) -> int:
    return hub_main(
        ["activate", "--hub-dir", str(w["hub"]), "--operator", "sup1", "--device", DEVICE,
         "--deployment", "dep-cal", "--duration", "4h", "--lease", "10m",
         "--watchlist", str(w["watchlist"]), "--officer", "PS 7", "--out", str(w["tmp"] / "a.json"),
         "--cohort", str(w["cohort"]), *how]
    )  # fmt: skip


def test_the_table_lists_each_target_with_its_threshold_and_interval(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _calibrate(world) == 0
    out = capsys.readouterr().out
    assert "score    snorm" in out and "1200 non-mated faces" in out
    assert "(deployment dep-cal, 267 entries," in out
    assert "cohort   " in out and "1200 embeddings" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith("1/")}
    assert "refused" not in lines["1/100"] and "(" in lines["1/100"]  # threshold, CI
    assert "refused: target_fpir 0.001 needs a cohort of at least 3000" in lines["1/1000"]
    assert "refused" in lines["1/6000"]
    assert _calibrate(world, "--json", "--score", "cosine", "--target-fpir", "0.005") == 0
    table = json.loads(capsys.readouterr().out)
    (row,) = table["targets"]
    assert table["score"] == "cosine" and table["cohort_size"] == 1200
    assert table["model_id"] == MODEL_ID and row["threshold"] >= 0.4
    assert table["watchlist_entries"] == 267
    assert row["false_alerts"] <= 6 and row["fpir_ci95"][0] <= row["fpir"] <= row["fpir_ci95"][1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target-fpir", "1/6000"], "needs a cohort of at least 18000 non-mated faces"),
        (["--target-fpir", "0"], "--target-fpir: must be above 0"),
        (["--target-fpir", "nan"], "--target-fpir: must be above 0"),
        (["--floor", "1.5"], "--floor: must be a cosine in 0–1"),
    ],
)
def test_targets_the_cohort_cannot_support_are_one_line_errors(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert _calibrate(world, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_cohort_made_with_another_model_or_a_foreign_watchlist_is_refused(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(world["tmp"] / "other.npz", embeddings=cohort(1200), model_id="other@1234")
    assert _calibrate(world, "--cohort", str(world["tmp"] / "other.npz")) == 2
    assert "made with model other@1234" in capsys.readouterr().err
    stranger = HubKeyStore.init(world["tmp"] / "stranger", "eve", passphrase=PASSPHRASE)
    seal(stranger, world["watchlist"])
    assert _calibrate(world) == 2
    assert "another X25519 key" in capsys.readouterr().err


def test_an_activation_from_a_target_fpir_is_issued_and_verified_by_the_device(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _activate(world, "--target-fpir", "1/200") == 0
    out = capsys.readouterr().out
    assert "target FPIR 1/200: snorm threshold" in out and "of 1200 cohort faces" in out
    token = world["tmp"] / "a.json"
    rc = agent_main(["activation", "verify", "--token", str(token), "--config", str(world["cfg"]),
                     "--skip-watchlist"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "VALID activation" in out
    assert "(snorm score)" in out and "from target FPIR 0.005:" in out and "95% CI" in out


@pytest.mark.parametrize(
    ("how", "message"),
    [
        (["--target-fpir", "0"], "--target-fpir: must be above 0"),
        (["--target-fpir", "2"], "--target-fpir: must be above 0 and at most 1"),
        (["--target-fpir", "nan"], "--target-fpir: must be above 0"),
        (["--target-fpir", "1/6000"], "needs a cohort of at least 18000"),
    ],
)
def test_bad_targets_are_refused_before_anything_is_signed(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str], how: list[str], message: str
) -> None:
    assert _activate(world, *how) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (world["tmp"] / "a.json").exists()
    assert HubKeyStore.open(world["hub"]).last_sequence(DEVICE) == 0


def test_a_target_needs_the_watchlist_file_not_its_hash(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = hub_main(
        ["activate", "--hub-dir", str(world["hub"]), "--operator", "sup1", "--device", DEVICE,
         "--deployment", "dep-cal", "--duration", "4h", "--lease", "10m", "--watchlist", "ab" * 32,
         "--officer", "PS 7", "--out", str(world["tmp"] / "a.json"), "--target-fpir", "0.01"]
    )  # fmt: skip
    assert rc == 2 and "give --watchlist as the sealed watchlist file" in capsys.readouterr().err
