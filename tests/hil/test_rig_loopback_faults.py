"""The virtual rig's loopback fallback, run for real: ``[network] isolation = "loopback"``
(what a machine without the namespace privilege falls back to), the faults scenario
only. A partition is then a broker stop/start, and the report must say so. The clock
jump runs here too, through the rig's wall-clock shim (about 30 s in all).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.fault]

REPO = Path(__file__).resolve().parents[2]

RIG = """
[rig]
name = "ci-loopback"
[device]
id = "lfr-hil-lo"
[network]
isolation = "loopback"
partition_s = 6
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
run = ["faults"]
"""


def test_faults_on_the_loopback_fallback(
    tmp_path: Path, models_dir: Path, shared_data: Path
) -> None:
    rig = tmp_path / "rig.toml"
    rig.write_text(RIG)
    out = tmp_path / "report"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "hil.rig", "run", "--rig", str(rig), "--out", str(out)),
            *("--models-dir", str(models_dir), "--shared-data", str(shared_data)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["network"].startswith("loopback only"), report["network"]
    assert "broker stop/start" in report["network"]
    assert "- network: loopback only" in (out / "report.md").read_text()
    (faults,) = report["scenarios"]
    assert faults["verdict"] == "pass"
    checks = {c["name"]: c for c in faults["checks"]}
    assert checks["partition during alerts"]["verdict"] == "pass"
    assert "(loopback)" in checks["partition during alerts"]["detail"]
    # Every fault ran here: nothing was skipped as "not run".
    assert {c["verdict"] for c in faults["checks"]} == {"pass"}
    for name in (
        "clock jump forward past not_after",
        "clock jump back does not extend the window",
        "agent SIGKILL + torn outbox write",
        "zero alerts lost or duplicated",
    ):
        assert name in checks
    figures = faults["figures"]
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["torn_delivered"] == 0
    assert figures["alerts_sealed"] >= 1
