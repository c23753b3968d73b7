"""Runs the rig the way a technician does (``python -m hil.rig run``) on a small scene,
for the tests that need a whole rig run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]  # the checkout (tests/support/ is two down)

#: A six-second scene: two watched people, a passer-by, a distractor never in view.
SMALL_FEED = """
[feed]
fps = 10
width = 960
height = 540
seconds = 6
passes = 1
seed = 4
watched = ["deepface_id01", "deepface_id02"]
passers_by = ["deepface_id10"]
distractors = ["deepface_id05"]
"""


def run_rig(
    tmp_path: Path, rig_text: str, models_dir: Path, shared_data: Path, *extra: str, timeout: int
) -> tuple[dict[str, Any], Path, str]:
    """Run the rig described by ``rig_text``; assert it passed; return its report, its
    folder and what it printed."""
    rig = tmp_path / "rig.toml"
    rig.write_text(rig_text)
    out = tmp_path / "report"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "hil.rig", "run", "--rig", str(rig), "--out", str(out)),
            *("--models-dir", str(models_dir), "--shared-data", str(shared_data), *extra),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads((out / "report.json").read_text()), out, proc.stdout
