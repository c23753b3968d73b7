"""lfr-agent eval openset on the shared photo set (real models, real photos)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli.agent_main import main


@pytest.mark.slow
def test_openset_writes_summary_and_det(
    tmp_path: Path, shared_data: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    rc = main(["eval", "openset", "--data", str(shared_data / "faces"), "--out", str(out),
               "--models-dir", str(models_dir), "--splits", "5", "--seed", "3"])  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["paths"]) == {
        "product (lfr-agent embed)",
        "product + quality gate",
        "plain reference (OpenCV runner)",
        "product + flip augmentation",
    }
    product = summary["paths"]["product (lfr-agent embed)"]
    assert product["photos"] == 61 and product["identities"] == 13 and product["splits"] == 5
    assert 0.0 <= product["rank1"] <= 1.0
    assert set(product["tpir_at_fpir"]) == {"0.01", "0.05", "0.1"}
    assert (out / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fusion = summary["shot_fusion"]
    assert fusion["shots_per_track"] == 3 and fusion["mated_tracks_per_split"] > 0
    assert set(fusion["methods"]) == {"one shot", "best_of", "weighted_mean"}
    for method in fusion["methods"].values():
        assert method["d_prime"] > 0 and set(method["tpir_at_fpir"]) == {"0.01", "0.05", "0.1"}
    text = capsys.readouterr().out
    assert "rank-1" in text and "shot fusion on tracks of 3 photos" in text
    assert "weighted_mean  d′" in text


def test_bad_arguments_are_one_line_errors(
    tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["eval", "openset", "--data", str(tmp_path / "nope"), "--models-dir", str(models_dir)]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "not a folder" in err
    rc = main(["eval", "openset", "--data", str(tmp_path), "--splits", "0"])
    assert rc == 2 and "--splits" in capsys.readouterr().err
    rc = main(["eval", "openset", "--data", str(tmp_path), "--track-shots", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--track-shots" in err
