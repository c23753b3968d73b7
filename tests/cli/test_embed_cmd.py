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


def _embedder_with_dim(source: Path, dest: Path, dim: int) -> str:
    """SFace followed by a fixed random projection to ``dim`` numbers: an operator's model."""
    import hashlib

    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    old_out = graph.output[0]
    width = old_out.type.tensor_type.shape.dim[-1].dim_value
    proj = np.random.default_rng(3).standard_normal((width, dim)).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(proj, "operator_projection"))
    graph.node.append(
        helper.make_node("MatMul", [old_out.name, "operator_projection"], ["projected"])
    )
    batch = old_out.type.tensor_type.shape.dim[0]
    out = helper.make_tensor_value_info(
        "projected", onnx.TensorProto.FLOAT, [batch.dim_param or batch.dim_value, dim]
    )
    del graph.output[:]
    graph.output.append(out)
    data = model.SerializeToString()
    dest.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_an_operator_embedder_of_another_size_gives_its_own_columns(
    tmp_path: Path, models_dir: Path, shared_data: Path
) -> None:
    own = tmp_path / "own-embedder.onnx"
    digest = _embedder_with_dim(next(models_dir.glob("face_recognition_*.onnx")), own, 64)
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[device]\nid = "lfr-test-01"\n[paths]\nmodels_dir = "{models_dir}"\n'
        f'[models]\nembedder = "{own}"\nembedder_sha256 = "{digest}"\n'
    )
    photo = sorted((shared_data / "faces").glob("*/1.jpg"))[0]
    (tmp_path / "list.txt").write_text(f"{photo}\n{tmp_path / 'missing.jpg'}\n")
    res = embed(tmp_path, "--list", "list.txt", "--out", "emb.npy", "--config", str(config))
    assert res.returncode == 0, res.stderr
    out = np.load(tmp_path / "emb.npy")
    assert out.shape == (2, 64)
    assert np.isnan(out[1]).all()
    np.testing.assert_allclose(np.linalg.norm(out[0]), 1.0, atol=1e-5)
