"""The virtual rig end to end in a short form: the rig CLI in its own process (it joins
the rig's hub network namespace, which must not happen to the test process), a real
mosquitto, ``lfr-agent run`` on a replayed scene, and the report it writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.system, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

RIG = """
[rig]
name = "ci-tiny"
[device]
id = "lfr-hil-ci"
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
[scenarios]
run = ["activation_compliance", "alert_latency", "detection_quality"]
"""


def test_short_virtual_rig_run(tmp_path: Path, models_dir: Path, shared_data: Path) -> None:
    rig = tmp_path / "rig.toml"
    rig.write_text(RIG)
    out = tmp_path / "report"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hil.rig",
            "run",
            "--rig",
            str(rig),
            "--out",
            str(out),
            "--short",
            "--models-dir",
            str(models_dir),
            "--shared-data",
            str(shared_data),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    verdicts = {s["name"]: s["verdict"] for s in report["scenarios"]}
    assert verdicts == {
        "activation_compliance": "pass",
        "alert_latency": "pass",
        "detection_quality": "pass",
    }
    latency = next(s for s in report["scenarios"] if s["name"] == "alert_latency")
    assert latency["samples"]["latency_s"] and latency["figures"]["samples"] >= 1
    assert (out / "latency_histogram.png").stat().st_size > 0
    assert "| activation_compliance | PASS" in proc.stdout
    # The rig removed the namespaces it made.
    if report["network"].startswith("network namespaces"):
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        made = report["network"].split()[2]
        assert made not in listed
