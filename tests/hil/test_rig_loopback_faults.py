"""The virtual rig's loopback fallback, run for real: ``[network] isolation = "loopback"``
(what a machine without the namespace privilege falls back to), the faults scenario
only. A partition is then a broker stop/start, and the report must say so. The clock
jump runs here too, through the rig's wall-clock shim (about 30 s in all).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.rig_runner import SMALL_FEED, run_rig

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.fault]

RIG = (
    """
[rig]
name = "ci-loopback"
[device]
id = "lfr-hil-lo"
[network]
isolation = "loopback"
partition_s = 6
[scenarios]
run = ["faults"]
"""
    + SMALL_FEED
)


def test_faults_on_the_loopback_fallback(
    tmp_path: Path, models_dir: Path, shared_data: Path
) -> None:
    report, out, _ = run_rig(tmp_path, RIG, models_dir, shared_data, timeout=300)
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
