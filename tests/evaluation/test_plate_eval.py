"""``lfr-agent eval plates`` on a SYNTHETIC labelled set: UK plates rendered with
OpenCV's fonts (not the DVLA font) on drawn vehicles over real street scenes from
../shared/data/scenes/no_faces (hil/synthetic_plates.py), generated at test time. The
figures are measured, not tuned to: the test checks the report's shape and that reading
works at all, and that reads of unlisted plates make no false hit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.cli.agent_main import main as agent_main
from hil.synthetic_plates import generate_plate_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plate_set(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    out = tmp_path_factory.mktemp("plates")
    generate_plate_set(
        out, count=40, negatives=8, seed=7, scenes_dir=shared_data / "scenes" / "no_faces"
    )
    return out


def test_eval_plates_prints_accuracy_and_false_hits(
    plate_set: Path, plate_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "plates", "--data", str(plate_set), "--models-dir", str(plate_models_dir)]
    assert agent_main([*args, "--hotlist-size", "10000"]) == 0
    out = capsys.readouterr().out
    exact = re.search(r"exact-plate accuracy\s+([0-9.]+)\s+\((\d+) of 40\)", out)
    chars = re.search(r"character accuracy\s+([0-9.]+)", out)
    assert exact and chars, out
    # Reading works at all on clean synthetic plates (a floor, far below what it reads).
    assert float(exact.group(1)) >= 0.5
    assert float(chars.group(1)) >= 0.8
    rows = re.findall(r"^\s+(0\.\d\d)\s+\d+\s+\d+/\d+\s+[0-9.]+\s+(\d+)\s+([0-9.]+)$", out, re.M)
    assert [r[0] for r in rows] == ["0.50", "0.70", "0.90"], out
    # The hotlist holds a one-character neighbour of each labelled plate: none may hit.
    assert all(int(false_hits) == 0 for _t, false_hits, _per in rows), out


def test_eval_plates_refuses_a_folder_without_labels(
    tmp_path: Path, plate_models_dir: Path
) -> None:
    args = ["eval", "plates", "--data", str(tmp_path), "--models-dir", str(plate_models_dir)]
    assert agent_main(args) == 2
