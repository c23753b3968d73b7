"""lfr-agent embed --list FILES.txt --out EMB.npy: order, NaN rows, warnings, model refusal."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from agent.vision.model_store import resolve_models
from agent.vision.still_photo import StillPhotoAnalyser


def embed(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.agent_main", "embed", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def test_rows_in_list_order_with_nan_for_missing_faces(
    tmp_path: Path, models_dir: Path, shared_data: Path
) -> None:
    faces = sorted((shared_data / "faces").glob("*/1.jpg"))[:3]
    local = tmp_path / "local.jpg"
    shutil.copy(faces[1], local)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 90, np.uint8))
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    lines = [
        str(faces[0]),
        "",
        "local.jpg",
        str(blank),
        "missing.jpg",
        str(junk),
        str(faces[2]),
        "  ",
    ]
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    res = embed(tmp_path, "--list", "list.txt", "--out", "emb.npy", "--models-dir", str(models_dir))
    assert res.returncode == 0, res.stderr
    out = np.load(tmp_path / "emb.npy")
    assert out.shape == (6, 128) and out.dtype == np.float32
    assert np.isnan(out[[2, 3, 4]]).all()
    assert not np.isnan(out[[0, 1, 5]]).any()
    for name in (
        "blank.png: no face found",
        "missing.jpg: no such file",
        "junk.jpg: not a readable image",
    ):
        assert name in res.stderr
    # Same detector/alignment/embedder as the live pipeline's still-photo API.
    analyser = StillPhotoAnalyser(resolve_models(models_dir))
    for row, photo in ((0, faces[0]), (1, faces[1]), (5, faces[2])):
        want = analyser.embed_central(cv2.imread(str(photo)))
        assert want is not None
        np.testing.assert_allclose(out[row], want, atol=1e-5)


def test_refuses_models_that_fail_verification(tmp_path: Path, models_dir: Path) -> None:
    bad = tmp_path / "models"
    shutil.copytree(models_dir, bad)
    target = next(bad.glob("face_recognition_*.onnx"))
    target.write_bytes(target.read_bytes() + b"x")
    (tmp_path / "list.txt").write_text("a.jpg\n")
    res = embed(tmp_path, "--list", "list.txt", "--out", "emb.npy", "--models-dir", str(bad))
    assert res.returncode == 1
    assert "SHA-256" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "emb.npy").exists()


def test_unreadable_list_is_a_one_line_usage_error(tmp_path: Path, models_dir: Path) -> None:
    res = embed(tmp_path, "--list", "nope.txt", "--out", "emb.npy", "--models-dir", str(models_dir))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "lfr-agent: error: embed: cannot read list nope.txt: FileNotFoundError"
    ]
