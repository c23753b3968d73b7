"""Nothing but alerts, status and reports may leave a camera: the model runtime must not
phone home. The onnxruntime wheels for Linux carry a telemetry client that writes a device
id under ~/.cache and a session file in /tmp, and contacts a collector; importing the agent
must switch it off before onnxruntime initialises.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SES = Path("/tmp/.ses")  # the telemetry client's session file


def test_running_the_models_leaves_no_telemetry_state(models_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    before = SES.stat().st_mtime_ns if SES.exists() else None
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    code = f"""
import numpy as np
from agent.vision.model_store import resolve_models
from agent.vision.face_embedder import FaceEmbedder
models = resolve_models(__import__('pathlib').Path({str(models_dir)!r}))
emb = FaceEmbedder(models["embedder"])
emb.embed([np.zeros((112, 112, 3), np.uint8)])
"""
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    assert [p for p in home.rglob("*")] == []
    after = SES.stat().st_mtime_ns if SES.exists() else None
    assert after == before, "onnxruntime telemetry wrote /tmp/.ses"
