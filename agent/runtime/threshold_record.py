"""What an activation says about its threshold beyond the number, as the deployment report
and the audit log record it: the score kind and, when the hub derived the threshold from a
target false-alert rate, the target and the calibration behind it (cohort size, false
alerts, achieved rate and its 95 % confidence interval).
"""

from __future__ import annotations

from typing import Any

from agent.trust.activation_token import Activation
from agent.trust.audit_log import FieldValue


def report_fields(act: Activation) -> dict[str, Any]:
    """The deployment report's ``threshold_kind``, ``target_fpir`` and ``calibration``."""
    return {
        "threshold_kind": act.score,
        "target_fpir": act.target_fpir,
        "calibration": act.calibration.body() if act.calibration is not None else None,
    }


def audit_fields(act: Activation) -> dict[str, FieldValue]:
    """The same for a flat audit entry (audit field names never contain "score")."""
    fields: dict[str, FieldValue] = {"threshold_kind": act.score}
    cal = act.calibration
    if act.target_fpir is not None and cal is not None:
        fields.update(
            target_fpir=act.target_fpir,
            cohort_size=cal.cohort_size,
            cohort_false_alerts=cal.false_alerts,
            fpir=cal.fpir,
            fpir_ci95_low=cal.fpir_ci95[0],
            fpir_ci95_high=cal.fpir_ci95[1],
        )
    return fields
