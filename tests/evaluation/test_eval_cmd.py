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
    groups = tmp_path / "groups.csv"
    names = sorted(p.name for p in (shared_data / "faces").iterdir() if p.is_dir())
    groups.write_text("".join(f"{n},{'A' if i < 10 else 'B'}\n" for i, n in enumerate(names)))
    rc = main(["eval", "openset", "--data", str(shared_data / "faces"), "--out", str(out),
               "--models-dir", str(models_dir), "--splits", "5", "--seed", "3",
               "--crowd", str(shared_data / "scenes/many_faces"), "--crowd-exclude", "deepface__*",
               "--bootstrap", "200", "--groups", str(groups)])  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["paths"]) == {
        "product (lfr-agent embed)",
        "product + quality gate",
        "plain reference (OpenCV runner)",
        "product + flip augmentation",
    }
    assert summary["crowd_faces"] > 200
    for kind in ("cosine", "snorm"):
        product = summary["paths"]["product (lfr-agent embed)"][kind]
        assert product["photos"] == 61 and product["identities"] == 13 and product["splits"] == 5
        assert product["score"] == kind and product["watchlist_entries_mean"] > 60
        assert 0.0 <= product["rank1"] <= 1.0 and len(product["rank1_ci95"]) == 2
        assert set(product["tpir_at_fpir"]) == {"0.1", "0.05", "0.01", "0.001", "0.000166667"}
        at_1e2 = product["tpir_at_fpir"]["0.01"]
        assert at_1e2["tpir_ci95"][0] <= at_1e2["tpir"] <= at_1e2["tpir_ci95"][1]
        assert "unsupported" in product["tpir_at_fpir"]["0.001"]  # the set is too small
        assert set(product["groups"]["groups"]) == {"A", "B"}
    assert (out / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for kind in ("cosine", "snorm"):
        fusion = summary["shot_fusion"][kind]
        assert fusion["shots_per_track"] == 3 and fusion["mated_tracks_per_split"] > 0
        assert set(fusion["methods"]) == {"one shot", "best_of", "weighted_mean"}
        for method in fusion["methods"].values():
            assert method["d_prime"] > 0
    text = capsys.readouterr().out
    assert (
        "product (lfr-agent embed) · snorm" in text and "product (lfr-agent embed) · cosine" in text
    )
    assert "FPIR   0.01: TPIR" in text and "at threshold" in text
    assert "FPIR 1/6000: n/a (needs at least 6000 non-mated probes" in text
    assert "groups at the threshold for FPIR" in text and "too small to conclude" in text
    assert "shot fusion · snorm on tracks of 3 photos" in text and "weighted_mean  d′" in text


@pytest.mark.slow
def test_one_score_kind_without_crowd_says_why_snorm_cannot_run(
    tmp_path: Path, shared_data: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["eval", "openset", "--data", str(shared_data / "faces"), "--out",
               str(tmp_path / "e"), "--models-dir", str(models_dir), "--splits", "2",
               "--score", "snorm", "--no-reference", "--track-shots", "0", "--bootstrap", "0"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "· snorm" in text and "· cosine" not in text
    assert "n/a: S-norm needs every watchlist entry to have at least 50" in text


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
    for args, message in (
        (["--fpir", "0"], "--fpir must be above 0"),
        (["--fpir", "1/x"], "is not a rate"),
        (["--group-fpir", "2"], "--group-fpir must be above 0"),
        (["--fillers", "-1"], "--fillers must be 0 or more"),
        (["--bootstrap", "-5"], "--bootstrap must be"),
        (["--floor", "2"], "--floor must be a cosine"),
        (["--crowd", str(tmp_path / "none")], "--crowd"),
    ):
        rc = main(["eval", "openset", "--data", str(tmp_path), *args])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and message in err, (args, err)
