"""The virtual rig end to end in a short form: the rig CLI in its own process (it joins
the rig's hub network namespace, which must not happen to the test process), a real
mosquitto, ``lfr-agent run`` on a replayed scene, and the report it writes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.rig_runner import SMALL_FEED, run_rig

pytestmark = [pytest.mark.system, pytest.mark.slow]

RIG = (
    """
[rig]
name = "ci-tiny"
[device]
id = "lfr-hil-ci"
[scenarios]
run = ["activation_compliance", "alert_latency", "detection_quality"]
"""
    + SMALL_FEED
)


def test_short_virtual_rig_run(tmp_path: Path, models_dir: Path, shared_data: Path) -> None:
    report, out, printed = run_rig(tmp_path, RIG, models_dir, shared_data, "--short", timeout=600)
    verdicts = {s["name"]: s["verdict"] for s in report["scenarios"]}
    assert verdicts == {
        "activation_compliance": "pass",
        "alert_latency": "pass",
        "detection_quality": "pass",
    }
    latency = next(s for s in report["scenarios"] if s["name"] == "alert_latency")
    assert latency["samples"]["latency_s"] and latency["figures"]["samples"] >= 1
    assert (out / "latency_histogram.png").stat().st_size > 0
    assert "| activation_compliance | PASS" in printed
    # The rig removed the namespaces it made.
    if report["network"].startswith("network namespaces"):
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        made = report["network"].split()[2]
        assert made not in listed
