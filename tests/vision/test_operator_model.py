"""A force's own embedder: a model manifest read by 'models install --from', used by the
pipeline, 'embed', 'eval', 'bench' and the hub alike, and refused when the manifest and the
ONNX file disagree. The second model is built here from the pinned SFace (force_model.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from force_model import build_force_model, write_manifest

from agent.cli.agent_main import main as agent_main
from agent.config import AgentConfig, DeviceSection
from agent.errors import ModelError
from agent.matching.gallery import Gallery
from agent.vision.embedder_spec import SFACE_SPEC
from agent.vision.face_pipeline import FacePipeline
from agent.vision.model_store import install_models, resolve_models
from agent.vision.operator_model import install_operator_embedder
from agent.vision.still_photo import StillPhotoAnalyser


@pytest.fixture(scope="module")
def force(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> dict[str, Path]:
    """The derived model, its manifest and a models folder it is installed into."""
    root = tmp_path_factory.mktemp("force")
    sface = next(models_dir.glob("face_recognition_*.onnx"))
    digest = build_force_model(sface, root / "force.onnx")
    manifest = write_manifest(root / "force.toml", root / "force.onnx", digest)
    installed = root / "models"
    assert agent_main(["models", "install", "--dir", str(installed), "--from", str(manifest)]) == 0
    return {"root": root, "onnx": root / "force.onnx", "manifest": manifest, "models": installed}


def test_install_records_the_manifest_and_every_tool_resolves_it(force: dict[str, Path]) -> None:
    recorded = json.loads((force["models"] / "manifest.json").read_text())["models"]
    entry = recorded["embedder"]
    assert entry["origin"] == "operator manifest" and entry["name"] == "force-test-model"
    assert entry["spec"]["input_size"] == 128 and entry["spec"]["embedding_size"] == 64
    assert entry["licence"].startswith("test only")
    assert recorded["detector"]["name"] == "yunet-2023mar"  # the pinned detector stays
    models = resolve_models(force["models"])
    assert models["embedder"].model_id.startswith("force-test-model@")
    assert models["embedder"].spec is not None and models["embedder"].spec.input_size == 128
    assert agent_main(["models", "verify", "--dir", str(force["models"])]) == 0


def test_the_still_photo_path_and_the_live_pipeline_embed_with_its_spec(
    force: dict[str, Path], shared_data: Path
) -> None:
    models = resolve_models(force["models"])
    analyser = StillPhotoAnalyser(models)
    assert analyser.embedder.dim == 64 and analyser.embedder.input_size == 128
    image = cv2.imread(str(shared_data / "faces/deepface_id01/1.jpg"))
    assert image is not None
    det = analyser.central_face(image)
    assert det is not None
    crop = analyser.embedder.crop(image, det.landmarks)
    assert crop.shape == (128, 128, 3)
    same_person = analyser.embed_central(cv2.imread(str(shared_data / "faces/deepface_id01/2.jpg")))
    other = analyser.embed_central(cv2.imread(str(shared_data / "faces/deepface_id05/1.jpg")))
    mine = analyser.embed(image, det)
    assert same_person is not None and other is not None
    assert mine.shape == (64,) and float(mine @ same_person) > float(mine @ other)
    # The live pipeline: a 64-d watchlist, set and searched with this model.
    pipe = FacePipeline(AgentConfig(device=DeviceSection(id="t")), models, threads=1)
    pipe.set_watchlist(Gallery(mine[None, :], ["me"]), 0.5, models["embedder"].model_id)
    frame_emb = pipe.embedder.embed([pipe.embedder.crop(image, det.landmarks)])
    np.testing.assert_allclose(frame_emb[0], mine, atol=1e-6)
    # A watchlist made with the pinned SFace is refused by name.
    with pytest.raises(ModelError, match="built with model sface"):
        pipe.set_watchlist(Gallery(mine[None, :], ["me"]), 0.5, "sface-2021dec@1234")


def test_embed_and_eval_use_it(
    force: dict[str, Path], shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = sorted((shared_data / "faces").glob("deepface_id0[1-2]/[12].jpg"))
    (tmp_path / "list.txt").write_text("\n".join(map(str, photos)) + "\n")
    out = tmp_path / "emb.npy"
    assert agent_main(["embed", "--list", str(tmp_path / "list.txt"), "--out", str(out),
                       "--models-dir", str(force["models"])]) == 0  # fmt: skip
    assert np.load(out).shape == (len(photos), 64)
    data = tmp_path / "faces"
    for ident in ("deepface_id01", "deepface_id02", "deepface_id03", "deepface_id04"):
        shutil.copytree(shared_data / "faces" / ident, data / ident)
    rc = agent_main(["eval", "openset", "--data", str(data), "--out", str(tmp_path / "eval"),
                     "--models-dir", str(force["models"]), "--splits", "3", "--track-shots", "0",
                     "--bootstrap", "0", "--score", "cosine", "--fpir", "0.1"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    # The OpenCV reference runs SFace-shaped models only: it is left out, not run wrongly.
    assert "plain reference" not in text and "product (lfr-agent embed) · cosine" in text


def test_the_bench_pipeline_runs_it(force: dict[str, Path], shared_data: Path) -> None:
    from agent.bench.pipeline_runs import run_sustained
    from agent.bench.scene_clip import enrol_watchlist

    models = resolve_models(force["models"])
    watchlist = enrol_watchlist(models, shared_data / "faces", filler=60, seed=0)
    assert watchlist.gallery.dim == 64
    frames = [
        cv2.imread(str(p)) for p in sorted((shared_data / "faces/deepface_id01").glob("*.jpg"))
    ]
    run = run_sustained(
        AgentConfig(device=DeviceSection(id="t")), models, 1, watchlist.gallery, 0.5, frames
    )
    assert run["counters"]["embeddings"] > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embedding_size": 128}, "gives 64-d embeddings, the manifest says embedding_size 128"),
        ({"input_size": 112}, "takes 128×128 faces, the manifest says input_size 112"),
        ({"sha256": "00" * 32}, "the manifest says 0000"),
    ],
)
def test_a_manifest_that_disagrees_with_its_file_is_refused(
    force: dict[str, Path], tmp_path: Path, change: dict[str, object], message: str
) -> None:
    digest = str(json.loads((force["models"] / "manifest.json").read_text())["models"]
                  ["embedder"]["sha256"])  # fmt: skip
    kw = {"input_size": 128, "embedding_size": 64}
    kw.update({k: v for k, v in change.items() if k in kw})  # type: ignore[misc]
    manifest = write_manifest(
        tmp_path / "m.toml",
        force["onnx"],
        str(change.get("sha256", digest)),
        input_size=int(kw["input_size"]),
        embedding_size=int(kw["embedding_size"]),
    )
    shutil.copy(force["onnx"], tmp_path / force["onnx"].name)
    with pytest.raises(ModelError, match=message) as info:
        install_operator_embedder(tmp_path / "models", manifest)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "models" / "manifest.json").exists()  # nothing half-installed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('colour_order_extra = "x"\n', "unknown key 'colour_order_extra'"),
    ],
)
def test_bad_manifests_are_one_line_errors(
    force: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str,
    message: str,
) -> None:  # fmt: skip
    manifest = write_manifest(tmp_path / "m.toml", force["onnx"], "ab" * 32, extra=extra)
    rc = agent_main(["models", "install", "--dir", str(tmp_path / "models"), "--from",
                     str(manifest)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and message in err[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml [", "invalid TOML"),
        ("[model]\nname = 'x'\n", r"must hold one \[embedder\] table"),
        ("[embedder]\nname = 'x'\n", "alignment_template is required"),
    ],
)
def test_manifest_syntax_errors_are_named(tmp_path: Path, text: str, message: str) -> None:
    from agent.vision.embedder_spec import read_manifest

    (tmp_path / "m.toml").write_text(text)
    with pytest.raises(ModelError, match=message):
        read_manifest(tmp_path / "m.toml")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("colour_order", '"yuv"', "colour_order must be rgb or bgr"),
        ("std", "[1.0, 0.0, 1.0]", "std must not be 0"),
        ("mean", "[1.0, 2.0]", "mean must be 3 finite numbers"),
        ("alignment_template", "[[1.0, 2.0]]", "alignment_template must be 5"),
        ("input_size", "8", "input_size must be an integer 16–1024"),
        ("embedding_size", "1.5", "embedding_size must be an integer"),
        ("licence", '" "', "licence must say under what terms"),
        ("name", '"Force Model"', "name must match"),
    ],
)
def test_each_manifest_field_is_checked(
    force: dict[str, Path], tmp_path: Path, field: str, value: str, message: str
) -> None:
    from agent.vision.embedder_spec import read_manifest

    text = force["manifest"].read_text()
    lines = [f"{field} = {value}" if line.startswith(f"{field} =") else line
             for line in text.splitlines()]  # fmt: skip
    (tmp_path / "m.toml").write_text("\n".join(lines) + "\n")
    with pytest.raises(ModelError, match=message):
        read_manifest(tmp_path / "m.toml")


def test_plain_install_keeps_the_force_model_until_pinned_defaults(
    force: dict[str, Path], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(force["models"], models)
    kept = {m.role: m for m in install_models(models)}
    assert kept["embedder"].name == "force-test-model"
    assert agent_main(["models", "install", "--dir", str(models), "--pinned-defaults"]) == 0
    back = resolve_models(models)["embedder"]
    assert back.name == "sface-2021dec" and back.spec is None
    assert StillPhotoAnalyser(resolve_models(models)).embedder.spec == SFACE_SPEC
    # A tampered force model is named, not silently replaced.
    install_operator_embedder(models, force["manifest"])
    target = models / "force-test-model.onnx"
    target.write_bytes(target.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelError, match="force-test-model.onnx has SHA-256"):
        resolve_models(models)
