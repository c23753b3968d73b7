"""Pinned models: install is idempotent, verify names a tampered or missing file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from agent.errors import ModelError
from agent.vision.model_store import (
    DEFAULT_MODELS,
    ModelStorageError,
    install_models,
    resolve_models,
    sha256_file,
    source_models_dir,
)


@pytest.fixture
def fresh_models(models_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "models"
    shutil.copytree(models_dir, dest)
    return dest


def run_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.agent_main", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_manifest_records_hashes_licence_and_provenance(models_dir: Path) -> None:
    manifest = json.loads((models_dir / "manifest.json").read_text())
    for spec in DEFAULT_MODELS:
        entry = manifest["models"][spec.role]
        assert entry["source_sha256"] == spec.source_sha256
        assert entry["sha256"] == sha256_file(models_dir / entry["file"])
        assert "Apache-2.0" in entry["licence"]
        assert "OpenCV Zoo" in entry["licence"]
        assert entry["provenance"]


def test_source_files_match_their_pins() -> None:
    for spec in DEFAULT_MODELS:
        assert sha256_file(source_models_dir() / spec.source_file) == spec.source_sha256


def test_converted_models_run_in_onnxruntime(models_dir: Path) -> None:
    models = resolve_models(models_dir)
    det = ort.InferenceSession(str(models["detector"].path), providers=["CPUExecutionProvider"])
    # Dynamic H/W: two different multiples of 32 both run.
    for h, w in ((320, 320), (480, 640)):
        out = det.run(None, {"input": np.zeros((1, 3, h, w), np.float32)})
        assert out[0].shape == (1, (h // 8) * (w // 8), 1)
    emb = ort.InferenceSession(str(models["embedder"].path), providers=["CPUExecutionProvider"])
    assert [i.name for i in emb.get_inputs()] == ["data"]
    (feat,) = emb.run(None, {"data": np.full((1, 3, 112, 112), 128, np.float32)})
    assert feat.shape == (1, 128)
    assert np.isfinite(feat).all()


def test_install_is_idempotent(fresh_models: Path) -> None:
    before = {p.name: (p.stat().st_mtime_ns, sha256_file(p)) for p in fresh_models.iterdir()}
    install_models(fresh_models)
    after = {p.name: (p.stat().st_mtime_ns, sha256_file(p)) for p in fresh_models.iterdir()}
    assert before == after


def test_install_repairs_a_tampered_model(fresh_models: Path) -> None:
    target = fresh_models / DEFAULT_MODELS[1].output_file
    good = sha256_file(target)
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    install_models(fresh_models)
    assert sha256_file(target) == good


@pytest.mark.parametrize("role_index", [0, 1])
def test_flipped_byte_is_refused_naming_the_file(fresh_models: Path, role_index: int) -> None:
    spec = DEFAULT_MODELS[role_index]
    target = fresh_models / spec.output_file
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=spec.output_file):
        resolve_models(fresh_models)
    res = run_agent("models", "verify", "--dir", str(fresh_models))
    assert res.returncode == 1
    assert spec.output_file in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_model_and_manifest_are_named(fresh_models: Path) -> None:
    (fresh_models / DEFAULT_MODELS[0].output_file).unlink()
    with pytest.raises(ModelError, match="is missing"):
        resolve_models(fresh_models)
    (fresh_models / "manifest.json").unlink()
    with pytest.raises(ModelError, match="no manifest"):
        resolve_models(fresh_models)


def test_manifest_not_made_from_pinned_source_is_refused(fresh_models: Path) -> None:
    path = fresh_models / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["models"]["embedder"]["source_sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="pinned source"):
        resolve_models(fresh_models)


def test_operator_supplied_model_is_checked_against_its_own_hash(
    fresh_models: Path, tmp_path: Path
) -> None:
    own = tmp_path / "my-embedder.onnx"
    shutil.copy(fresh_models / DEFAULT_MODELS[1].output_file, own)
    digest = sha256_file(own)
    models = resolve_models(fresh_models, {"embedder": (own, digest)})
    assert models["embedder"].path == own
    assert models["embedder"].model_id == f"my-embedder@{digest[:16]}"
    with pytest.raises(ModelError, match="my-embedder.onnx"):
        resolve_models(fresh_models, {"embedder": (own, "f" * 64)})


def test_cli_install_then_verify(tmp_path: Path) -> None:
    dest = tmp_path / "m"
    res = run_agent("models", "install", "--dir", str(dest))
    assert res.returncode == 0, res.stderr
    res = run_agent("models", "verify", "--dir", str(dest))
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("✓") == 2


def test_install_where_nothing_can_be_written_is_one_line_exit_3(tmp_path: Path) -> None:
    # A folder below a regular file cannot be created, not even by root.
    (tmp_path / "plain-file").write_text("x")
    dest = tmp_path / "plain-file" / "models"
    res = run_agent("models", "install", "--dir", str(dest))
    assert res.returncode == 3
    assert res.stderr.strip().splitlines() == [
        f"lfr-agent: error: models: cannot install the models into {dest}: Not a directory"
    ]
    assert res.stdout == ""


def test_install_failing_midway_names_the_folder_and_leaves_no_temp_file(
    fresh_models: Path,
) -> None:
    (fresh_models / "manifest.json").unlink()
    (fresh_models / "manifest.json").mkdir()  # the manifest cannot replace a folder
    with pytest.raises(ModelStorageError, match=f"into {fresh_models}: Is a directory") as info:
        install_models(fresh_models)
    assert info.value.exit_code == 3 and "\n" not in str(info.value)
    assert not [p for p in fresh_models.iterdir() if p.name.startswith(".")]
