"""The rig's scenarios, one module each; ``SCENARIOS`` maps a name to (title, run)."""

from __future__ import annotations

from collections.abc import Callable

from hil.rig.scenarios import (
    activation_compliance,
    alert_latency,
    detection_quality,
    faults,
    privacy,
    retention,
)
from hil.rig.scenarios.scenario_support import RigDriver, ScenarioResult

Run = Callable[[RigDriver, ScenarioResult], None]

SCENARIOS: dict[str, tuple[str, Run]] = {
    m.__name__.rsplit(".", 1)[1]: (m.TITLE, m.run)
    for m in (activation_compliance, alert_latency, detection_quality, faults, retention, privacy)
}
