"""The synthetic scene generator: deterministic clips whose ground truth the detector agrees with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.camera.replay_source import ReplaySource
from agent.errors import UsageError
from agent.vision.face_detector import FaceDetector
from agent.vision.model_store import resolve_models
from hil.synthetic_scene import SceneSpec, generate_scene, load_truth, main

SMALL = SceneSpec(width=640, height=360, fps=15, seconds=2.0, people=2, seed=3,
                  min_face_px=50, max_face_px=90)  # fmt: skip


def _gen(tmp: Path, shared: Path, models_dir: Path, spec: SceneSpec = SMALL):  # type: ignore[no-untyped-def]
    return generate_scene(
        tmp, spec, shared / "faces", shared / "scenes" / "no_faces", models_dir=models_dir
    )


def test_same_seed_gives_the_same_clip(tmp_path: Path, shared_data: Path, models_dir: Path) -> None:
    a = _gen(tmp_path / "a", shared_data, models_dir)
    b = _gen(tmp_path / "b", shared_data, models_dir)
    assert a.to_json() == b.to_json()
    assert (tmp_path / "a/000007.jpg").read_bytes() == (tmp_path / "b/000007.jpg").read_bytes()
    c = _gen(tmp_path / "c", shared_data, models_dir, SceneSpec(**{**SMALL.__dict__, "seed": 4}))
    assert c.to_json() != a.to_json()


def test_truth_is_consistent_and_round_trips(
    tmp_path: Path, shared_data: Path, models_dir: Path
) -> None:
    truth = _gen(tmp_path, shared_data, models_dir)
    assert len(truth.frames) == SMALL.frame_count == 30
    assert sorted(p.name for p in tmp_path.glob("*.jpg"))[0] == "000001.jpg"
    assert len(list(tmp_path.glob("*.jpg"))) == 30
    assert len(truth.identities) == 2
    for ident in truth.identities.values():
        states = [
            (fr.index, f.state)
            for fr in truth.frames
            for f in fr.faces
            if f.identity == ident.identity
        ]
        visible = [i for i, s in states if s == "visible"]
        assert visible, f"{ident.identity} never fully visible"
        assert ident.first_full_frame == visible[0]
        assert ident.first_frame == states[0][0]
    for fr in truth.frames:
        for f in fr.faces:
            x0, y0, x1, y1 = f.box
            inside = x0 >= 0 and y0 >= 0 and x1 <= SMALL.width and y1 <= SMALL.height
            assert (f.state == "clipped") == (not inside)
            if f.state == "visible":
                assert f.visible_fraction > 0.97
            assert len(f.landmarks) == 5
    doc = json.loads((tmp_path / "truth.json").read_text())
    assert doc["frame_count"] == 30
    assert load_truth(tmp_path).to_json() == truth.to_json()


def test_identities_and_excluded_photos_are_honoured(
    tmp_path: Path, shared_data: Path, models_dir: Path
) -> None:
    photos = sorted(p.name for p in (shared_data / "faces/deepface_id02").iterdir())
    spec = SceneSpec(
        width=640, height=360, fps=10, seconds=0.5, identities=("deepface_id02",),
        exclude_photos=tuple(f"deepface_id02/{p}" for p in photos[:-1]), seed=1,
    )  # fmt: skip
    truth = _gen(tmp_path, shared_data, models_dir, spec)
    assert list(truth.identities) == ["deepface_id02"]
    assert truth.identities["deepface_id02"].photo == f"deepface_id02/{photos[-1]}"


def test_the_pole_occludes_people_walking_behind_it(
    tmp_path: Path, shared_data: Path, models_dir: Path
) -> None:
    spec = SceneSpec(width=640, height=360, fps=10, seconds=6, people=3, seed=5,
                     min_face_px=50, max_face_px=80)  # fmt: skip
    truth = _gen(tmp_path, shared_data, models_dir, spec)
    states = {f.state for fr in truth.frames for f in fr.faces}
    assert {"visible", "occluded", "clipped"} <= states
    (x0, _, x1, _) = truth.occluders[0]
    # Pixels under the pole are the pole's colour whatever walks behind it.
    import cv2

    frames = [cv2.imread(str(tmp_path / fr.file)) for fr in truth.frames[::10]]
    column = round((x0 + x1) / 2)
    for img in frames:
        assert img is not None
        assert np.abs(img[:, column].astype(int) - frames[0][:, column].astype(int)).max() < 30

    bare = _gen(tmp_path / "bare", shared_data, models_dir,
                SceneSpec(**{**spec.__dict__, "occluder": False, "people": 1}))  # fmt: skip
    assert not bare.occluders
    assert "occluded" not in {f.state for fr in bare.frames for f in fr.faces}


def test_the_detector_finds_the_visible_faces_where_the_truth_says(
    tmp_path: Path, shared_data: Path, models_dir: Path
) -> None:
    spec = SceneSpec(width=1280, height=720, fps=10, seconds=3, people=3, seed=2)
    truth = _gen(tmp_path, shared_data, models_dir, spec)
    detector = FaceDetector(resolve_models(models_dir)["detector"], input_long_side=640)
    import cv2

    found = total = 0
    for fr in truth.frames[::3]:
        visible = [f for f in fr.faces if f.state == "visible"]
        if not visible:
            continue
        dets = detector.detect(cv2.imread(str(tmp_path / fr.file)))  # type: ignore[arg-type]
        for f in visible:
            total += 1
            x0, y0, x1, y1 = f.box
            best = 0.0
            for d in dets:
                ix = max(0.0, min(x1, d.x + d.w) - max(x0, d.x))
                iy = max(0.0, min(y1, d.y + d.h) - max(y0, d.y))
                inter = ix * iy
                best = max(best, inter / ((x1 - x0) * (y1 - y0) + d.w * d.h - inter))
            found += best >= 0.5
    assert total >= 10
    assert found / total >= 0.9, f"detector agreed with the truth on {found}/{total} faces"


def test_replay_source_plays_the_clip(tmp_path: Path, shared_data: Path, models_dir: Path) -> None:
    truth = _gen(tmp_path, shared_data, models_dir)
    src = ReplaySource(tmp_path, fps=truth.fps, realtime=False)
    src.open()
    n = 0
    while (frame := src.read()) is not None:
        assert frame.image.shape == (360, 640, 3)
        n += 1
    src.close()
    assert n == len(truth.frames)


def test_bad_requests_are_one_line_errors(
    tmp_path: Path, shared_data: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match="identities not found.*nobody"):
        _gen(tmp_path, shared_data, models_dir, SceneSpec(identities=("nobody",)))
    with pytest.raises(UsageError, match="must not repeat"):
        _gen(tmp_path, shared_data, models_dir, SceneSpec(identities=("deepface_id01",) * 2))
    with pytest.raises(UsageError, match="people must be within"):
        _gen(tmp_path, shared_data, models_dir, SceneSpec(people=0))
    with pytest.raises(UsageError, match="32 people asked for"):
        _gen(tmp_path, shared_data, models_dir, SceneSpec(people=32, seconds=0.1))
    rc = main([str(tmp_path / "x"), "--models-dir", str(models_dir), "--size", "big"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--size" in err
    with pytest.raises(UsageError, match="malformed ground truth"):
        (tmp_path / "truth.json").write_text('{"format": 1}')
        load_truth(tmp_path)


def test_command_line_writes_a_clip(
    tmp_path: Path, shared_data: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main([str(tmp_path), "--models-dir", str(models_dir), "--size", "320x240",
               "--fps", "10", "--seconds", "0.5", "--people", "1", "--no-occluder",
               "--faces", str(shared_data / "faces"),
               "--backgrounds", str(shared_data / "scenes/no_faces")])  # fmt: skip
    assert rc == 0
    assert len(list(tmp_path.glob("*.jpg"))) == 5
    assert load_truth(tmp_path).occluders == ()
    assert "5 frames" in capsys.readouterr().out
